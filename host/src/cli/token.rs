//! `bandpass token`: a new random token for a group (or the operator) of
//! the admin API, and the SHA-256 the config holds instead of it. The
//! token goes to the group; only its hash goes in `bandpass.toml`.

use clap::Args;
use rand::Rng;

use crate::sandbox::sha256_hex;

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The group the token is for: prints a ready `[[admin.group]]` entry
    /// (without it, the operator's `operator_token_sha256` line).
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
}

pub fn execute(args: TokenArgs) -> anyhow::Result<u8> {
    if let Some(group) = &args.group
        && !crate::text::is_name(group, 32)
    {
        anyhow::bail!(
            "'{group}' is not a group name: use lowercase letters, digits and dashes (at most 32)"
        );
    }
    // 32 bytes from the thread's generator, which the OS seeds: a token
    // nobody can guess, written as 64 hex digits.
    let bytes: [u8; 32] = rand::rng().random();
    let token = format!("bp_{}", hex::encode(bytes));
    let hash = sha256_hex(token.as_bytes());
    println!("# Give this token to its holder; it is not stored anywhere:");
    println!("#   {token}");
    println!(
        "# Put this in bandpass.toml. Where serve takes uploads already, a reload (SIGHUP)\n\
         # applies it; turning uploads on (the first group or the operator token) needs a restart:"
    );
    match &args.group {
        Some(group) => {
            println!("[[admin.group]]");
            println!("name = \"{group}\"");
            println!("token_sha256 = \"{hash}\"");
        }
        None => println!("operator_token_sha256 = \"{hash}\"   # in [admin]"),
    }
    Ok(0)
}
