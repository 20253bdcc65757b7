//! A filter author's commands for a running `bandpass serve`, through
//! its admin API (docs/admin-api.yaml):
//! - `bandpass upload FILTER.wasm --to URL --group G`: put a filter on
//!   it (`PUT /v1/groups/{group}/filters/{name}`); prints the filter
//!   running (version, output topic, the canary's figures), or the
//!   reason it was refused;
//! - `bandpass upload --watchlist NAME=FILE` (or `--map NAME=FILE`) `--to
//!   URL --group G [--expires-in 12h]`: put a watchlist or sky map of the
//!   group on it (`PUT /v1/groups/{group}/watchlists/{name}`, `.../maps/`);
//! - `bandpass filters --to URL --group G [NAME] [--logs]`: the group's
//!   filters with their state and counters, and its watchlists and maps;
//!   or one filter with its log lines; `NAME --enable|--disable|--delete`
//!   changes one (`POST .../enable`, `.../disable`, `DELETE`).
//!
//! The token comes from the environment (`BANDPASS_TOKEN`) or a file,
//! never from the command line, where other users could read it. A
//! refusal exits with status 2.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};

use super::format::{Table, thousands};

/// Where the host is, and who asks.
#[derive(Debug, Args)]
pub struct HostArgs {
    /// The host's admin port, e.g. `http://127.0.0.1:9464`.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Your group, as the operator named it (not needed with
    /// `filters --all`).
    #[arg(long)]
    pub group: Option<String>,
    /// A file holding your token, instead of `$BANDPASS_TOKEN`.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The filter component (.wasm).
    #[arg(required_unless_present_any = ["watchlist", "map"])]
    pub filter: Option<PathBuf>,
    /// Instead of a filter: a watchlist of your group, as NAME=FILE (CSV
    /// name,ra,dec,radius_arcsec, or JSON); your filters read it as
    /// `watch.NAME.*`.
    #[arg(long, value_name = "NAME=FILE", value_parser = super::parse_param,
          conflicts_with_all = ["filter", "map"])]
    pub watchlist: Option<(String, String)>,
    /// Instead of a filter: a sky map of your group, as NAME=FILE (a MOC,
    /// or a multi-order gravitational-wave map); your filters read it as
    /// `map.NAME.*`.
    #[arg(long, value_name = "NAME=FILE", value_parser = super::parse_param,
          conflicts_with_all = ["filter", "watchlist"])]
    pub map: Option<(String, String)>,
    /// With --watchlist or --map: after this long (`12h`, at most a week)
    /// your filters read it absent. Default: until replaced or deleted.
    #[arg(long, value_name = "DURATION")]
    pub expires_in: Option<String>,
    #[command(flatten)]
    pub host: HostArgs,
    /// The filter's name in your group ([a-z0-9-]); its output topic is
    /// `bandpass.<group>.<name>`. Defaults to the file's name
    /// (`bright_transients.wasm` gives `bright-transients`).
    #[arg(long)]
    pub name: Option<String>,
    /// A parameter passed to the filter's `init`, as KEY=VALUE
    /// (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = super::parse_param)]
    pub params: Vec<(String, String)>,
    /// Budgets asked for (within your group's maximum); those not given
    /// take the host's defaults.
    #[command(flatten)]
    pub budget: super::BudgetArgs,
    /// Register it without running it (enable it later).
    #[arg(long)]
    pub disabled: bool,
}

impl UploadArgs {
    /// The watchlist or map to upload, as (kind's path, name, file).
    fn sky_file(&self) -> Option<(&'static str, &str, &str)> {
        match (&self.watchlist, &self.map) {
            (Some((name, file)), _) => Some(("watchlists", name, file)),
            (_, Some((name, file))) => Some(("maps", name, file)),
            _ => None,
        }
    }
}

/// How long an upload may take: a large component compiles, then runs
/// the host's canary, before the answer.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Args)]
pub struct FiltersArgs {
    #[command(flatten)]
    pub host: HostArgs,
    /// One filter (default: every filter of the group).
    pub name: Option<String>,
    /// With NAME: also its recent log lines on that instance.
    #[arg(long, requires = "name")]
    pub logs: bool,
    /// With NAME: run it again (it stays registered while disabled).
    #[arg(long, requires = "name", conflicts_with_all = ["disable", "delete", "logs"])]
    pub enable: bool,
    /// With NAME: stop running it, keeping it registered.
    #[arg(long, requires = "name", conflicts_with_all = ["delete", "logs"])]
    pub disable: bool,
    /// With NAME: delete it from every instance (its output topic stays).
    #[arg(long, requires = "name", conflicts_with = "logs")]
    pub delete: bool,
    /// Every group's filters (the operator's token): `--group` is not
    /// needed.
    #[arg(long, conflicts_with_all = ["name", "group"])]
    pub all: bool,
}

/// The admin API of one host, as one group (or the operator, for every
/// group's filters).
struct Remote {
    /// `<URL>/v1`.
    root: String,
    /// `<URL>/v1/groups/<group>`.
    base: String,
    group: String,
    token: String,
    agent: ureq::Agent,
}

impl Remote {
    fn new(host: &HostArgs) -> anyhow::Result<Remote> {
        let group = host
            .group
            .clone()
            .ok_or_else(|| anyhow::anyhow!("give --group: your group, as the operator named it"))?;
        Remote::as_caller(host, group)
    }

    /// For every group (`filters --all`): no group in the paths.
    fn operator(host: &HostArgs) -> anyhow::Result<Remote> {
        Remote::as_caller(host, "*".to_string())
    }

    fn as_caller(host: &HostArgs, group: String) -> anyhow::Result<Remote> {
        let token = match &host.token_file {
            Some(file) => std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the token file {}", file.display()))?,
            None => std::env::var("BANDPASS_TOKEN").map_err(|_| {
                anyhow::anyhow!(
                    "no token: set BANDPASS_TOKEN to your group's token, or give --token-file"
                )
            })?,
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(UPLOAD_TIMEOUT))
            .user_agent(concat!("bandpass/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Remote {
            root: format!("{}/v1", host.to.trim_end_matches('/')),
            base: format!("{}/v1/groups/{group}", host.to.trim_end_matches('/')),
            group,
            token: token.trim().to_string(),
            agent,
        })
    }

    /// `GET` (no body) or `PUT` (a body) of `path` under the group
    /// (`/filters/NAME`); returns the status and the JSON answer.
    fn call(&self, path: &str, body: Option<(&str, &[u8])>) -> anyhow::Result<(u16, Value)> {
        self.send(if body.is_some() { "PUT" } else { "GET" }, path, body)
    }

    /// `method` (`GET`, `PUT`, `POST` or `DELETE`) of `path` under the
    /// group, with `body` for a `PUT`.
    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> anyhow::Result<(u16, Value)> {
        let url = if let Some(root_path) = path.strip_prefix("//") {
            format!("{}/{root_path}", self.root)
        } else {
            format!("{}{path}", self.base)
        };
        let auth = format!("Bearer {}", self.token);
        let sent = match (method, body) {
            ("PUT", Some((content_type, bytes))) => self
                .agent
                .put(&url)
                .header("Authorization", &auth)
                .header("Content-Type", content_type)
                .send(bytes),
            ("POST", _) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_empty(),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("Authorization", &auth)
                .call(),
            _ => self.agent.get(&url).header("Authorization", &auth).call(),
        };
        let mut response = sent.with_context(|| format!("cannot reach {url}"))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .with_context(|| format!("cannot read the answer of {url}"))?;
        let answer = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, answer))
    }

    /// Prints a refusal (the host's reason) and gives the exit status.
    fn refused(&self, what: &str, status: u16, answer: &Value) -> u8 {
        let reason = answer["error"]
            .as_str()
            .or(answer.as_str())
            .unwrap_or_default();
        eprintln!(
            "{}/{what}: refused ({status}): {}",
            self.group,
            shown(reason.trim())
        );
        2
    }
}

pub fn execute(args: UploadArgs) -> anyhow::Result<u8> {
    let remote = Remote::new(&args.host)?;
    if let Some((kind, name, file)) = args.sky_file() {
        return upload_sky(&remote, kind, name, file, args.expires_in.as_deref());
    }
    if args.expires_in.is_some() {
        anyhow::bail!("--expires-in goes with --watchlist or --map: a filter does not expire");
    }
    let filter = args.filter.as_ref().expect("clap requires a filter");
    let component = std::fs::read(filter)
        .with_context(|| format!("cannot read filter {}", filter.display()))?;
    let name = match &args.name {
        Some(n) => n.clone(),
        None => default_name(filter),
    };
    let manifest = manifest(&args);
    let (content_type, body) = multipart(&manifest.to_string(), &component);
    let (status, answer) =
        remote.call(&format!("/filters/{name}"), Some((&content_type, &body)))?;
    let group_name = format!("{}/{name}", remote.group);
    match status {
        200..=202 => {
            let f = &answer["filter"];
            let c = &answer["canary"];
            println!(
                "{group_name}: {} {} ({}), output topic {}",
                match status {
                    201 => "uploaded",
                    200 => "replaced",
                    _ => "registered",
                },
                shown(f["version"].as_str().unwrap_or("?")),
                shown(f["state"].as_str().unwrap_or("?")),
                shown(f["output_topic"].as_str().unwrap_or("?")),
            );
            println!(
                "canary: accepted {} of {} alerts; at most {} fuel and {} µs per alert",
                c["accepted"], c["alerts"], c["max_fuel"], c["max_micros"]
            );
            if let Some(pending) = answer["pending"].as_str() {
                println!("not running yet: {}", shown(pending));
            }
            Ok(0)
        }
        _ => Ok(remote.refused(&name, status, &answer)),
    }
}

/// `bandpass upload --watchlist|--map NAME=FILE`: one of the group's
/// sky files, `kind` (`watchlists` or `maps`).
fn upload_sky(
    remote: &Remote,
    kind: &str,
    name: &str,
    file: &str,
    expires_in: Option<&str>,
) -> anyhow::Result<u8> {
    if !crate::sky::is_catalog_name(name) {
        anyhow::bail!(
            "'{}' is not a name for a watchlist or map: use 1 to {} of a-z, 0-9, '_' and '-' \
             (your filters read it as watch.NAME.* or map.NAME.*)",
            shown(name),
            crate::sky::CATALOG_NAME_BYTES
        );
    }
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {file}"))?;
    let mut path = format!("/{kind}/{name}");
    if let Some(after) = expires_in {
        // Checked here as the host checks it, so the URL holds a duration.
        crate::units::parse_duration(after).map_err(|e| anyhow::anyhow!("--expires-in: {e}"))?;
        path.push_str(&format!("?expires_in={after}"));
    }
    let (status, answer) = remote.call(&path, Some(("application/octet-stream", &bytes)))?;
    if !(200..=202).contains(&status) {
        return Ok(remote.refused(&format!("{kind}/{name}"), status, &answer));
    }
    let f = if status == 202 {
        &answer["file"]
    } else {
        &answer
    };
    println!(
        "{}/{kind}/{name}: {} version {}{}; your filters read it as {}.{name}.*",
        remote.group,
        match status {
            201 => "uploaded",
            200 => "replaced",
            _ => "registered",
        },
        shown(f["version"].as_str().unwrap_or("?")),
        holds(f),
        if kind == "maps" { "map" } else { "watch" },
    );
    if let Some(pending) = answer["pending"].as_str() {
        println!("not in use yet: {}", shown(pending));
    }
    Ok(0)
}

/// What a sky file holds, as the host read it: `, 3 targets`.
fn holds(file: &Value) -> String {
    let used = &file["in_use"];
    if let Some(targets) = used["targets"].as_u64() {
        format!(", {} targets", thousands(targets))
    } else if let Some(kind) = used["kind"].as_str() {
        let area = used["area_deg2"].as_f64().unwrap_or(f64::NAN);
        format!(", {} of {area:.1} square degrees", shown(kind))
    } else {
        String::new()
    }
}

/// `bandpass filters`: the group's filters, or one with its log.
pub fn list(args: FiltersArgs) -> anyhow::Result<u8> {
    if args.all {
        return list_all(&args);
    }
    let remote = Remote::new(&args.host)?;
    if let (Some(name), true) = (&args.name, args.enable || args.disable || args.delete) {
        return change(&remote, name, &args);
    }
    let path = args
        .name
        .as_ref()
        .map_or("/filters".to_string(), |n| format!("/filters/{n}"));
    let (status, answer) = remote.call(&path, None)?;
    if status != 200 {
        return Ok(remote.refused(args.name.as_deref().unwrap_or("*"), status, &answer));
    }
    let filters = match &args.name {
        Some(_) => vec![answer],
        None => answer["filters"].as_array().cloned().unwrap_or_default(),
    };
    let mut table = Table::new(&[
        "FILTER",
        "VERSION",
        "STATE",
        "ALERTS",
        "ACCEPTED",
        "FAILED",
        "OUTPUT TOPIC",
    ]);
    let mut reasons = Vec::new();
    for f in &filters {
        let name = f["name"].as_str().unwrap_or("?");
        let counter = |k: &str| f["counters"][k].as_u64().map_or("-".into(), thousands);
        table.row(vec![
            name.to_string(),
            f["version"].as_str().unwrap_or("?").to_string(),
            f["state"].as_str().unwrap_or("?").to_string(),
            counter("alerts"),
            counter("accepted"),
            counter("failed"),
            f["output_topic"].as_str().unwrap_or("?").to_string(),
        ]);
        if let Some(reason) = f["reason"].as_str() {
            reasons.push(format!("{}: {}", shown(name), shown(reason)));
        }
    }
    print!("{}", table.render());
    for r in reasons {
        println!("{r}");
    }
    if args.name.is_none() {
        sky_files(&remote)?;
    }
    if let (true, Some(name)) = (args.logs, &args.name) {
        let (status, log) = remote.call(&format!("/filters/{name}/logs"), None)?;
        if status != 200 {
            return Ok(remote.refused(name, status, &log));
        }
        println!("log of {name} on this instance:");
        for line in log["lines"].as_array().into_iter().flatten() {
            println!(
                "  [{}] {}",
                shown(line["source"].as_str().unwrap_or("?")),
                shown(line["text"].as_str().unwrap_or_default())
            );
        }
    }
    Ok(0)
}

/// `bandpass filters --all`: every group's filters, as the operator
/// sees them (`GET /v1/filters`).
fn list_all(args: &FiltersArgs) -> anyhow::Result<u8> {
    let remote = Remote::operator(&args.host)?;
    let (status, answer) = remote.send("GET", "//filters", None)?;
    if status != 200 {
        return Ok(remote.refused("filters", status, &answer));
    }
    let mut table = Table::new(&[
        "GROUP", "FILTER", "VERSION", "STATE", "ALERTS", "ACCEPTED", "FAILED",
    ]);
    let mut filters = answer["filters"].as_array().cloned().unwrap_or_default();
    filters.sort_by_key(|f| (f["group"].to_string(), f["name"].to_string()));
    for f in &filters {
        let s = |k: &str| shown(f[k].as_str().unwrap_or("?")).into_owned();
        let counter = |k: &str| f["counters"][k].as_u64().map_or("-".into(), thousands);
        table.row(vec![
            s("group"),
            s("name"),
            s("version"),
            s("state"),
            counter("alerts"),
            counter("accepted"),
            counter("failed"),
        ]);
    }
    print!("{}", table.render());
    println!("{} filters", filters.len());
    Ok(0)
}

/// `bandpass filters NAME --enable|--disable|--delete`.
fn change(remote: &Remote, name: &str, args: &FiltersArgs) -> anyhow::Result<u8> {
    let (method, path, done) = if args.delete {
        ("DELETE", format!("/filters/{name}"), "deleted")
    } else if args.enable {
        ("POST", format!("/filters/{name}/enable"), "enabled")
    } else {
        ("POST", format!("/filters/{name}/disable"), "disabled")
    };
    let (status, answer) = remote.send(method, &path, None)?;
    if !(200..=202).contains(&status) {
        return Ok(remote.refused(name, status, &answer));
    }
    let state = answer["state"].as_str().map(|s| format!(" ({})", shown(s)));
    println!(
        "{}/{name}: {done}{}",
        remote.group,
        state.unwrap_or_default()
    );
    if let Some(pending) = answer["pending"].as_str() {
        println!("not in effect here yet: {}", shown(pending));
    }
    Ok(0)
}

/// The group's watchlists and maps, after its filters (none: nothing).
fn sky_files(remote: &Remote) -> anyhow::Result<()> {
    let mut files = Vec::new();
    for kind in ["watchlists", "maps"] {
        let (status, answer) = remote.call(&format!("/{kind}"), None)?;
        if status == 200 {
            files.extend(answer[kind].as_array().cloned().unwrap_or_default());
        }
    }
    if files.is_empty() {
        return Ok(());
    }
    let mut table = Table::new(&["READ AS", "VERSION", "HOLDS", "EXPIRES"]);
    for f in &files {
        let name = shown(f["name"].as_str().unwrap_or("?")).into_owned();
        let read_as = match f["kind"].as_str() {
            Some("map") => format!("map.{name}"),
            _ => format!("watch.{name}"),
        };
        let expires = match (f["expired"].as_bool(), f["expires_at_ms"].as_u64()) {
            (Some(true), _) => "expired".to_string(),
            (_, Some(at)) => {
                let left = at.saturating_sub(crate::fleet::follower::now_ms()) / 1000;
                match (left / 3600, left % 3600 / 60) {
                    (0, 0) => format!("in {left}s"),
                    (0, m) => format!("in {m}m"),
                    (h, m) => format!("in {h}h {m}m"),
                }
            }
            _ => "-".to_string(),
        };
        table.row(vec![
            read_as,
            shown(f["version"].as_str().unwrap_or("?")).into_owned(),
            holds(f).trim_start_matches(", ").to_string(),
            expires,
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

/// Text from the service as this terminal shows it: one line, controls
/// visible (`text::shown`), whatever the service sent.
fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    crate::text::shown(text, 4096)
}

/// `bright_transients.wasm` -> `bright-transients`.
fn default_name(path: &std::path::Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().to_lowercase().replace('_', "-"))
        .unwrap_or_default()
}

/// The upload's JSON manifest from the arguments.
fn manifest(args: &UploadArgs) -> Value {
    let params: serde_json::Map<String, Value> = args
        .params
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let b = &args.budget;
    let mut limits = serde_json::Map::new();
    if let Some(fuel) = b.fuel {
        limits.insert("fuel".into(), json!(fuel));
    }
    if let Some(ms) = b.deadline_ms {
        limits.insert("deadline".into(), json!(format!("{ms}ms")));
    }
    if let Some(mib) = b.memory_mib {
        limits.insert("memory".into(), json!(format!("{mib}MiB")));
    }
    let mut manifest = json!({ "params": params, "enabled": !args.disabled });
    if !limits.is_empty() {
        manifest["limits"] = Value::Object(limits);
    }
    manifest
}

/// A multipart/form-data body with the `manifest` and `component` parts.
fn multipart(manifest: &str, component: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("bandpass-{:016x}", rand::random::<u64>());
    let mut body = Vec::with_capacity(component.len() + manifest.len() + 512);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"manifest\"\r\n\
             Content-Type: application/json\r\n\r\n{manifest}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"component\"; filename=\"filter.wasm\"\r\n\
             Content-Type: application/wasm\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(component);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_name_is_the_file_name_in_the_api_s_spelling() {
        assert_eq!(
            default_name(std::path::Path::new("x/bright_transients.wasm")),
            "bright-transients"
        );
        assert_eq!(
            default_name(std::path::Path::new("My_Filter.wasm")),
            "my-filter"
        );
    }
}
