//! The sandbox against hostile filters: every attack ends in its own
//! classified failure, costs that filter that alert only, and leaves the
//! host and every other filter's verdicts as they were.

use bandpass::sandbox::{FailureKind, Limits, LoadError, Outcome, Verdict};

use crate::support::{
    self, component, load, load_with, run, sandbox, sandbox_with, texts_variant, ztf_alerts,
};

/// The verdicts of the well-behaved sample filter, run alone.
fn reference_verdicts() -> Vec<Outcome> {
    let sb = sandbox();
    let good = load(&sb, "bright_transients");
    run(&[good], &ztf_alerts())
        .into_iter()
        .map(|(_, r)| r.evaluations[0].outcome.clone())
        .collect()
}

/// Loads `fixture` beside the good filter, runs both over the real ZTF
/// alerts, and returns the fixture's outcomes after checking that the
/// good filter's verdicts are exactly those it gives alone.
fn run_beside_a_good_filter(fixture: &str, limits: Limits) -> Vec<Outcome> {
    let sb = sandbox_with(1000);
    let hostile = load_with(&sb, fixture, limits, vec![]);
    let good = load(&sb, "bright_transients");
    let results = run(&[hostile, good], &ztf_alerts());
    let good_verdicts: Vec<Outcome> = results
        .iter()
        .map(|(_, r)| r.evaluations[1].outcome.clone())
        .collect();
    assert_eq!(
        good_verdicts,
        reference_verdicts(),
        "{fixture} changed the verdicts of a good filter"
    );
    results
        .into_iter()
        .map(|(_, r)| r.evaluations[0].outcome.clone())
        .collect()
}

/// The first `n` real ZTF alerts decoded for `filter` alone: its field
/// `i` at slot `i`, as `filter.instance((0..fields).collect())` reads.
fn decoded_for(
    filter: &std::sync::Arc<bandpass::sandbox::LoadedFilter>,
    n: usize,
) -> Vec<bandpass::decode::DecodedAlert> {
    let decoder = bandpass::runner::Runner::decoder_for(
        std::slice::from_ref(filter),
        bandpass::decode::SchemaSource::None,
        &Default::default(),
    );
    support::ztf_alert_bytes()[..n]
        .iter()
        .flat_map(|b| decoder.decode(&bytes::Bytes::from(b.clone())).unwrap())
        .collect()
}

fn assert_all_failed(outcomes: &[Outcome], kind: FailureKind, needle: &str) {
    assert!(!outcomes.is_empty());
    for o in outcomes {
        match o {
            Outcome::Failed(f) => {
                assert_eq!(f.kind, kind, "wrong classification: {f:?}");
                assert!(
                    f.message.contains(needle),
                    "'{needle}' not in: {}",
                    f.message
                );
            }
            other => panic!("expected a {kind:?} failure, got {other:?}"),
        }
    }
}

#[test]
fn an_infinite_loop_runs_out_of_fuel_on_every_alert_and_the_store_is_rebuilt() {
    let limits = Limits {
        fuel_per_alert: 5_000_000,
        deadline_ms: 10_000,
        ..Limits::default()
    };
    // Each alert fails the same way: a poisoned store that was not
    // rebuilt would fail the second call differently.
    let outcomes = run_beside_a_good_filter("hostile_infinite_loop", limits);
    assert_all_failed(&outcomes, FailureKind::OutOfFuel, "budget 5000000");
}

#[test]
fn the_deadline_stops_an_infinite_loop_when_fuel_is_plentiful() {
    let limits = Limits {
        fuel_per_alert: u64::MAX / 2,
        deadline_ms: 20,
        ..Limits::default()
    };
    let sb = sandbox_with(1000);
    let hostile = load_with(&sb, "hostile_infinite_loop", limits, vec![]);
    let alerts = &ztf_alerts()[..2];
    let outcomes: Vec<Outcome> = run(&[hostile], alerts)
        .into_iter()
        .map(|(_, r)| r.evaluations[0].outcome.clone())
        .collect();
    assert_all_failed(&outcomes, FailureKind::Deadline, "20 ms");
}

#[test]
fn a_sleep_past_the_deadline_is_stopped_when_asked_for_and_a_short_one_runs() {
    // A sleep is a host call (a timer and a poll): no fuel is spent and
    // no wasm runs while it waits, so the epoch deadline alone cannot end
    // it. Asked for 5 s with 200 ms to go, it is refused at once.
    let limits = Limits {
        deadline_ms: 200,
        ..Limits::default()
    };
    let sb = sandbox_with(1000);
    let sleep = |ms: &str| {
        let filter = load_with(
            &sb,
            "hostile_sleep",
            limits,
            vec![("sleep_ms".into(), ms.into())],
        );
        run(&[filter], &ztf_alerts()[..2])
            .into_iter()
            .map(|(_, r)| r.evaluations[0].outcome.clone())
            .collect::<Vec<Outcome>>()
    };
    assert_all_failed(
        &sleep("5000"),
        FailureKind::Deadline,
        "asked to wait 5s (a sleep or a timeout) ending after its deadline of 200 ms",
    );
    // A sleep that ends within the deadline is only a slow filter.
    for outcome in sleep("1") {
        assert_eq!(outcome, Outcome::Verdict(Verdict::Reject));
    }
    // `init` has a second, but a timer is held to the alert's deadline
    // there too: one set in `init` and kept could otherwise be waited on
    // by the next alert for up to a second.
    let err = sb
        .load(
            &support::component("hostile_sleep"),
            vec![("sleep_in_init_ms".into(), "500".into())],
            limits,
        )
        .err()
        .expect("a 500 ms sleep in init is refused under a 200 ms deadline")
        .to_string();
    assert!(err.contains("asked to wait 500ms"), "{err}");
}

#[test]
fn a_filter_trapping_on_one_alert_in_two_or_three_is_quarantined_by_its_rate() {
    // Each panic costs a new instance and its `init`; five in a row never
    // come, so the rate decides: a quarter of a worker's last 64 alerts
    // trapped, judged once 64 have run.
    for (every, traps) in [(2, 32), (3, 22)] {
        let sb = sandbox();
        let flaky = load_with(
            &sb,
            "hostile_panic",
            Limits::default(),
            vec![("every".into(), every.to_string())],
        );
        let alerts: Vec<_> = (0..4).flat_map(|_| ztf_alerts()).collect();
        let outcomes: Vec<Outcome> = run(&[flaky], &alerts)
            .into_iter()
            .map(|(_, r)| r.evaluations[0].outcome.clone())
            .collect();
        assert_eq!(outcomes.len(), 72);
        // Judged at the first trap once 64 alerts have run.
        let quarantined = outcomes
            .iter()
            .position(|o| matches!(o, Outcome::Skipped { .. }))
            .expect("quarantined");
        assert!(
            (64..=64 + every).contains(&quarantined),
            "every={every}: quarantined at alert {quarantined}"
        );
        for (i, outcome) in outcomes[..quarantined].iter().enumerate() {
            match ((i + 1) % every, outcome) {
                (0, Outcome::Failed(f)) if f.kind == FailureKind::Panic => {}
                (1.., Outcome::Verdict(Verdict::Reject)) => {}
                _ => panic!("every={every}, alert {i}: {outcome:?}"),
            }
        }
        let expected = format!(
            "quarantined: {traps} of its last 64 alerts here trapped, each costing a new instance"
        );
        for outcome in &outcomes[quarantined..] {
            match outcome {
                Outcome::Skipped {
                    reason,
                    quarantined: true,
                } => {
                    assert!(reason.contains(&expected), "every={every}: {reason}")
                }
                other => panic!("every={every}: not skipped after quarantine: {other:?}"),
            }
        }
    }
}

#[test]
fn a_rebuild_after_a_trap_runs_its_init_within_the_alerts_deadline() {
    // `init` sleeps 150 ms and each good call 100 ms, under a 200 ms
    // deadline. The first instance's `init` is the load's (the alert's
    // clock starts after it): both good calls fit. After the panic on the
    // third, every rebuild spends 150 ms of the alert's 200 in `init`, so
    // the 100 ms sleep that follows would end past the deadline and is
    // stopped when asked for: the recovery is charged to the filter, which
    // is quarantined after five such alerts in a row.
    // Its mean time is the deadline: the slow calls are the deadline's to
    // judge here, not the mean time's.
    let limits = Limits {
        deadline_ms: 200,
        mean_ms: 200,
        ..Limits::default()
    };
    let sb = sandbox();
    let slow_rebuild = load_with(
        &sb,
        "hostile_panic",
        limits,
        vec![
            ("every".into(), "3".into()),
            ("sleep_in_init_ms".into(), "150".into()),
            ("sleep_ms".into(), "100".into()),
        ],
    );
    let outcomes: Vec<Outcome> = run(&[slow_rebuild], &ztf_alerts()[..9])
        .into_iter()
        .map(|(_, r)| r.evaluations[0].outcome.clone())
        .collect();
    let kinds: Vec<String> = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Verdict(v) => format!("{v:?}"),
            Outcome::Failed(f) => format!("{:?}", f.kind),
            Outcome::Skipped { .. } => "Skipped".into(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "Reject", "Reject", "Panic", "Deadline", "Deadline", "Deadline", "Deadline", "Skipped",
            "Skipped"
        ]
    );
    let Outcome::Failed(f) = &outcomes[3] else {
        unreachable!()
    };
    assert!(
        f.message.contains("asked to wait 100ms") && f.message.contains("deadline of 200 ms"),
        "{}",
        f.message
    );
}

#[test]
fn a_filter_slow_on_every_alert_within_its_deadline_is_quarantined_by_its_mean_time() {
    // 30 ms a call is within the 100 ms deadline every time, yet holds a
    // worker (and every filter after it) to 33 alerts a second: over its
    // 10 ms mean time. A run of 64 alerts may take 640 ms; the filter is
    // stopped as soon as its run has taken more, so after at most 22
    // alerts (each takes at least its 30 ms sleep) and at least 7 (each
    // ends within its deadline), not after 64.
    let limits = Limits {
        deadline_ms: 100,
        mean_ms: 10,
        ..Limits::default()
    };
    let sb = sandbox();
    let slow = load_with(
        &sb,
        "hostile_sleep",
        limits,
        vec![("sleep_ms".into(), "30".into())],
    );
    let alerts: Vec<_> = (0..4).flat_map(|_| ztf_alerts()).collect();
    let outcomes: Vec<Outcome> = run(std::slice::from_ref(&slow), &alerts)
        .into_iter()
        .map(|(_, r)| r.evaluations[0].outcome.clone())
        .collect();
    let ran = outcomes
        .iter()
        .position(|o| !matches!(o, Outcome::Verdict(_)))
        .expect("the filter was quarantined");
    assert!((7..=22).contains(&ran), "quarantined after {ran} alerts");
    assert!(
        outcomes[..ran]
            .iter()
            .all(|o| *o == Outcome::Verdict(Verdict::Reject)),
        "each call is within its deadline"
    );
    for outcome in &outcomes[ran..] {
        assert!(
            matches!(outcome, Outcome::Skipped { reason, quarantined: true } if reason.contains("more than 64 alerts at its mean time of 10 ms (limits mean_time) may take")),
            "{outcome:?}"
        );
    }
}

#[test]
fn an_exit_from_the_guest_is_one_line_naming_the_call() {
    let limits = Limits::default();
    let sb = sandbox_with(1000);
    let exits = load_with(
        &sb,
        "hostile_panic",
        limits,
        vec![("exit".into(), "3".into())],
    );
    let outcomes: Vec<Outcome> = run(&[exits], &ztf_alerts()[..2])
        .into_iter()
        .map(|(_, r)| r.evaluations[0].outcome.clone())
        .collect();
    // WASI 0.2's `exit` carries success or failure only: any other code
    // arrives as 1.
    assert_all_failed(&outcomes, FailureKind::Trap, "called exit(1) on this alert");
    let Outcome::Failed(f) = &outcomes[0] else {
        unreachable!()
    };
    assert!(!f.message.contains('\n'), "{}", f.message);
}

#[test]
fn a_component_whose_evaluate_has_another_signature_is_refused_for_its_exports() {
    let err = sandbox()
        .load(&component("wrong_signature"), vec![], Limits::default())
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(matches!(err, LoadError::Instantiate { .. }), "{text}");
    assert!(
        text.contains("its `evaluate` does not have the contract's type")
            && text.contains("must match bandpass:filter@0.2.0"),
        "{text}"
    );
    assert!(!text.contains("describe"), "{text}");
}

#[test]
fn a_manifest_over_its_bounds_is_refused_naming_the_bound_and_quoting_it_short() {
    let sb = sandbox();
    for (variant, bound) in [
        ("longpth", "60000 bytes long; a path may have at most 256"),
        ("bigname", "(30000000 bytes) must be 1 to 64 characters"),
        ("manyfld", "100000 fields declared; at most 512"),
        (
            "deeppth",
            "20 dot-separated parts; a path may have at most 16",
        ),
    ] {
        let err = sb
            .load(&texts_variant(variant), vec![], Limits::default())
            .err()
            .unwrap_or_else(|| panic!("{variant} is refused"));
        let text = err.to_string();
        assert!(
            matches!(err, LoadError::Manifest { .. }),
            "{variant}: {text}"
        );
        assert!(text.contains(bound), "{variant}: {text}");
        assert!(
            text.len() < 400,
            "{variant}: quoted in full: {} bytes",
            text.len()
        );
    }
    // The plain variant loads, and so does one with every text and
    // collection at its bound: the bounds are inclusive.
    assert!(
        sb.load(&texts_variant("default"), vec![], Limits::default())
            .is_ok()
    );
    let at_bound = sb
        .load(&texts_variant("atbound"), vec![], Limits::default())
        .unwrap_or_else(|e| panic!("at its bounds, refused: {e}"));
    assert_eq!(at_bound.manifest.fields.len(), 512);
    assert!(at_bound.manifest.fields.iter().all(|f| f.len() == 256));
    assert_eq!(at_bound.manifest.name.len(), 64);
}

#[test]
fn texts_a_filter_wrote_are_kept_as_they_are_shown_one_line_with_controls_visible() {
    let sb = sandbox_with(1000);
    let escapes = sb
        .load(&texts_variant("escapes"), vec![], Limits::default())
        .unwrap();
    assert_eq!(escapes.manifest.version, "1.0\\r\\n\\u{1b}[2J\\u{0}");
    assert_eq!(
        escapes.manifest.description,
        "forged\\r\\n2695378462115010012  accept\\u{1b}[31m"
    );
    let with = |verdict: &str| {
        let filter = sb
            .load(
                &texts_variant("default"),
                vec![("verdict".into(), verdict.into())],
                Limits::default(),
            )
            .unwrap();
        let outcome = run(std::slice::from_ref(&filter), &ztf_alerts()[..1])[0]
            .1
            .evaluations[0]
            .outcome
            .clone();
        (filter, outcome)
    };
    let (_, error) = with("error-escapes");
    assert_all_failed(
        &[error],
        FailureKind::FilterError,
        "reported an error: bad\\u{1b}[2J\\r\\n2695378462115010012  accept",
    );
    let (logged, _) = with("log-escapes");
    let lines: Vec<String> = logged.log.lines().into_iter().map(|l| l.text).collect();
    assert_eq!(
        lines,
        ["line\\r\\n2026-12-05T00:00:00Z ERROR forged\\u{1b}[2J"]
    );
}

#[test]
fn note_keys_that_would_forge_a_header_are_refused_and_tags_stay_as_given() {
    let sb = sandbox_with(1000);
    let verdict = |which: &str| {
        let filter = sb
            .load(
                &texts_variant("default"),
                vec![("verdict".into(), which.into())],
                Limits::default(),
            )
            .unwrap();
        run(&[filter], &ztf_alerts()[..1])[0].1.evaluations[0]
            .outcome
            .clone()
    };
    for (which, reason) in [
        ("note-key-crlf", "note key 'a\\r\\nX-Forged'"),
        ("note-key-empty", "note key ''"),
        ("note-key-twice", "note key 'k' twice"),
    ] {
        assert_all_failed(&[verdict(which)], FailureKind::BadVerdict, reason);
    }
    // Tags are data: kept as the filter gave them, and encoded where they
    // are shown or sent (text::joined_tags).
    match verdict("tags-commas") {
        Outcome::Verdict(Verdict::Accept { tags, .. }) => {
            assert_eq!(tags, ["a,b", "100%", "\x1b[31mred", "plain"]);
            assert_eq!(
                bandpass::text::joined_tags(&tags),
                "a%2Cb,100%25,%1B[31mred,plain"
            );
        }
        other => panic!("accepted with tags: {other:?}"),
    }
}

#[test]
fn a_memory_bomb_hits_the_memory_cap() {
    // A deadline and a mean time far off: filling 32 MiB takes ~15 ms
    // here, but CI's loaded cores once took over 100 ms (the default
    // deadline) for it, and a loaded machine took 47 ms an alert, over the
    // default mean time of 10 ms; the memory cap, not the clock, is what
    // this test is about.
    let limits = Limits {
        memory_bytes: 32 << 20,
        deadline_ms: 30_000,
        mean_ms: 30_000,
        ..Limits::default()
    };
    let outcomes = run_beside_a_good_filter("hostile_memory_bomb", limits);
    assert_all_failed(
        &outcomes,
        FailureKind::Memory,
        "over the cap of 33554432 bytes",
    );
}

#[test]
fn unbounded_recursion_overflows_the_stack() {
    let outcomes = run_beside_a_good_filter("hostile_deep_recursion", Limits::default());
    assert_all_failed(&outcomes, FailureKind::StackOverflow, "stack");
}

#[test]
fn a_panic_is_reported_with_its_message() {
    let outcomes = run_beside_a_good_filter("hostile_panic", Limits::default());
    assert_all_failed(&outcomes, FailureKind::Panic, "panicked");
    let Outcome::Failed(f) = &outcomes[0] else {
        unreachable!()
    };
    assert!(
        f.message
            .contains("hostile-panic: deliberate panic in evaluate")
            && !f.message.contains("RUST_BACKTRACE"),
        "the guest's panic message, not the runtime's hint, should be in the report: {}",
        f.message
    );
}

#[test]
fn a_million_tags_is_refused_as_a_bad_verdict() {
    // Returning a million (empty) tags costs about 69 million fuel: give
    // it the fuel and the time, so that the verdict bound is what stops it.
    let limits = Limits {
        fuel_per_alert: 500_000_000,
        deadline_ms: 10_000,
        mean_ms: 10_000,
        ..Limits::default()
    };
    let outcomes = run_beside_a_good_filter("hostile_million_tags", limits);
    assert_all_failed(
        &outcomes,
        FailureKind::BadVerdict,
        "1000000 tags; at most 32",
    );
}

#[test]
fn a_field_the_schema_lacks_is_an_unknown_field_failure_naming_it() {
    let outcomes = run_beside_a_good_filter("hostile_unknown_field", Limits::default());
    assert_all_failed(
        &outcomes,
        FailureKind::UnknownField,
        "candidate.no_such_field",
    );
}

#[test]
fn a_chatty_filter_has_its_log_truncated_and_keeps_working() {
    let sb = sandbox();
    // Megabytes of output take a while in a debug build on a busy
    // machine: the budgets are generous so that only the log is tested.
    let limits = Limits {
        fuel_per_alert: 5_000_000_000,
        deadline_ms: 30_000,
        mean_ms: 30_000,
        ..Limits::default()
    };
    let chatty = load_with(&sb, "hostile_chatty", limits, vec![]);
    let results = run(std::slice::from_ref(&chatty), &ztf_alerts()[..3]);
    for (_, r) in &results {
        assert!(
            matches!(r.evaluations[0].outcome, Outcome::Verdict(_)),
            "a chatty filter must still give verdicts: {:?}",
            r.evaluations[0].outcome
        );
    }
    let (dropped_lines, cut_bytes) = chatty.log.dropped();
    assert!(chatty.log.total_bytes() >= 3 << 20, "it wrote megabytes");
    assert!(dropped_lines > 0 || cut_bytes > 0, "the log was bounded");
    assert!(chatty.log.lines().len() <= 1000);
}

#[test]
fn a_filter_is_quarantined_after_n_consecutive_failures() {
    let sb = sandbox_with(3);
    let panicky = load(&sb, "hostile_panic");
    let results = run(std::slice::from_ref(&panicky), &ztf_alerts()[..6]);
    let kinds: Vec<&str> = results
        .iter()
        .map(|(_, r)| match &r.evaluations[0].outcome {
            Outcome::Failed(_) => "failed",
            Outcome::Skipped {
                quarantined: true, ..
            } => "quarantined",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "failed",
            "failed",
            "failed",
            "quarantined",
            "quarantined",
            "quarantined"
        ]
    );
    let reason = panicky.health.quarantined().expect("quarantined");
    assert!(reason.contains("3 consecutive failed alerts"), "{reason}");
}

#[test]
fn a_component_importing_wasi_http_is_refused_at_load() {
    let err = sandbox()
        .load(
            &component("hostile_forbidden_import"),
            vec![],
            Limits::default(),
        )
        .err()
        .expect("refused");
    assert!(matches!(err, LoadError::ForbiddenImport { .. }), "{err}");
    assert!(err.to_string().contains("wasi:http"), "{err}");
}

#[test]
fn a_component_for_another_contract_version_is_refused_naming_both() {
    let err = sandbox()
        .load(&component("future_contract"), vec![], Limits::default())
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(matches!(err, LoadError::ContractVersion { .. }), "{text}");
    assert!(
        text.contains("1.0.0")
            && text.contains("speaks bandpass:filter@0.5.0 (and runs 0.2.0, 0.3.0 and 0.4.0)"),
        "{text}"
    );
}

#[test]
fn a_core_module_and_random_bytes_are_refused_with_a_reason() {
    let sb = sandbox();
    let core = b"\0asm\x01\0\0\0";
    let err = sb.load(core, vec![], Limits::default()).err().unwrap();
    assert!(matches!(err, LoadError::CoreModule), "{err}");
    assert!(err.to_string().contains("wasm32-wasip2"));
    let err = sb
        .load(b"hello, not wasm", vec![], Limits::default())
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::NotWasm), "{err}");
    let mut truncated = component("bright_transients");
    truncated.truncate(truncated.len() / 2);
    let err = sb
        .load(&truncated, vec![], Limits::default())
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::Invalid { .. }), "{err}");
}

#[test]
fn a_second_load_comes_from_the_compile_cache() {
    let sb = sandbox();
    let first = load(&sb, "bright_transients");
    let (compiled, sha256) = (first.cache, first.sha256.clone());
    // Dropped first, so that the second load reads the disk cache rather
    // than share the first's component in memory.
    drop(first);
    let second = load(&sb, "bright_transients");
    assert_eq!(compiled, bandpass::sandbox::CacheOutcome::Compiled);
    assert_eq!(second.cache, bandpass::sandbox::CacheOutcome::Hit);
    assert_eq!(sha256, second.sha256);
}

#[test]
fn deployments_of_one_component_share_its_code_but_keep_their_own_parameters() {
    let sb = sandbox();
    let as_built = load(&sb, "bright_transients");
    // Brighter than every sample alert: accepts none of them.
    let strict = load_with(
        &sb,
        "bright_transients",
        Limits::default(),
        vec![("max_mag".into(), "12".into())],
    );
    let other = load(&sb, "fast_risers");
    assert!(as_built.shares_component_with(&strict));
    assert!(!as_built.shares_component_with(&other));
    let accepted = |i: usize| {
        run(&[as_built.clone(), strict.clone()], &ztf_alerts())
            .iter()
            .filter(|(_, r)| {
                matches!(
                    r.evaluations[i].outcome,
                    Outcome::Verdict(Verdict::Accept { .. })
                )
            })
            .count()
    };
    let before = accepted(0);
    assert!(before > 0, "the sample filter accepts some sample alerts");
    assert_eq!(accepted(1), 0, "max_mag = 12 reached its own instance only");
    // A set whose `init` refuses its parameters is refused alone.
    let refused = sb.load(
        &component("bright_transients"),
        vec![("max_mag".into(), "bright".into())],
        Limits::default(),
    );
    let refused = refused.err();
    assert!(
        matches!(refused, Some(LoadError::Init { .. })),
        "{refused:?}"
    );
    assert_eq!(accepted(0), before);
}

#[test]
fn a_filter_has_one_instance_which_workers_hold_one_at_a_time() {
    // Panics on every third call of its instance: two workers' handles
    // taking turns reach the third call on the third alert.
    let sb = sandbox();
    let panics = load_with(
        &sb,
        "hostile_panic",
        Limits::default(),
        vec![("every".into(), "3".into())],
    );
    let alerts = decoded_for(&panics, 3);
    let slots: Vec<usize> = (0..panics.fields.len()).collect();
    let mut one = panics.instance(slots.clone());
    let mut two = panics.instance(slots);
    let held = one.try_hold().expect("free");
    assert!(two.try_hold().is_none(), "held by the other worker");
    drop(held);
    let outcomes = [
        one.evaluate(&alerts[0]).outcome,
        two.evaluate(&alerts[1]).outcome,
        one.evaluate(&alerts[2]).outcome,
    ];
    assert!(matches!(outcomes[0], Outcome::Verdict(_)), "{outcomes:?}");
    assert!(matches!(outcomes[1], Outcome::Verdict(_)), "{outcomes:?}");
    assert!(
        matches!(&outcomes[2], Outcome::Failed(f) if f.kind == FailureKind::Panic),
        "{outcomes:?}"
    );
}

#[test]
fn fields_larger_than_the_memory_cap_fail_the_alert_before_the_host_copies_them() {
    use bandpass::decode::FieldValue;
    let sb = sandbox();
    let limits = Limits {
        memory_bytes: 8 << 20,
        ..Limits::default()
    };
    let filter = load_with(&sb, "bright_transients", limits, vec![]);
    let alert = decoded_for(&filter, 1).remove(0);
    let text = filter
        .fields
        .iter()
        .position(|p| p.text == "candidate.isdiffpos")
        .expect("bright-transients reads isdiffpos");
    let mut huge = alert.clone();
    huge.values[text] = FieldValue::Text("t".repeat((8 << 20) + 1));
    let mut instance = filter.instance((0..filter.fields.len()).collect());
    match instance.evaluate(&huge).outcome {
        Outcome::Failed(f) => {
            assert_eq!(f.kind, FailureKind::Memory, "{f:?}");
            assert!(
                f.message.contains("memory cap of 8388608 bytes")
                    && f.message.contains("'candidate.isdiffpos'"),
                "{}",
                f.message
            );
        }
        other => panic!("expected a memory failure, got {other:?}"),
    }
    // A large text within the cap is carried, and the filter decides.
    huge.values[text] = FieldValue::Text("t".repeat(1 << 20));
    assert!(matches!(
        instance.evaluate(&huge).outcome,
        Outcome::Verdict(_)
    ));
    assert!(matches!(
        instance.evaluate(&alert).outcome,
        Outcome::Verdict(_)
    ));
}

#[test]
fn a_worker_that_keeps_finding_a_filter_busy_makes_its_own_instance() {
    use bandpass::sandbox::{BUSY_ROUNDS, Moment};
    let sb = sandbox();
    let bright = load(&sb, "bright_transients");
    let alert = decoded_for(&bright, 1).remove(0);
    let slots: Vec<usize> = (0..bright.fields.len()).collect();
    let mut one = bright.instance(slots.clone());
    let mut two = bright.instance(slots);
    let expected = one.evaluate(&alert).outcome;
    let call = |two: &mut bandpass::sandbox::FilterInstance| {
        two.hold()
            .evaluate_from(&alert, Moment::AT_REST, None, std::time::Instant::now())
            .0
            .outcome
    };
    // Busy in fewer rounds than that: the worker waits its turn.
    let held = one.try_hold().expect("free");
    for _ in 1..BUSY_ROUNDS {
        assert!(two.try_hold().is_none());
    }
    drop(held);
    assert_eq!(call(&mut two), expected);
    assert!(!two.has_own_instance());
    // One more round finding it busy: rather than wait, the worker makes
    // its own instance (with `one` held, waiting here would never end),
    // which decides as the shared one does.
    let held = one.try_hold().expect("free");
    assert!(two.try_hold().is_none());
    assert_eq!(call(&mut two), expected);
    assert!(two.has_own_instance());
    assert!(
        two.try_hold().is_some(),
        "its own, while the shared one is held"
    );
    drop(held);
}

#[test]
fn workers_sharing_filters_at_once_each_get_the_verdicts_of_one_alone() {
    let sb = sandbox();
    let filters = vec![
        load(&sb, "bright_transients"),
        load(&sb, "fast_risers"),
        load_with(
            &sb,
            "bright_transients",
            Limits::default(),
            vec![("max_mag".into(), "18".into())],
        ),
    ];
    let verdicts = |results: Vec<(std::path::PathBuf, bandpass::runner::AlertResult)>| {
        results
            .into_iter()
            .map(|(_, r)| {
                r.evaluations
                    .into_iter()
                    .map(|e| e.outcome)
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let alone = verdicts(run(&filters, &ztf_alerts()));
    let alerts: Vec<_> = std::iter::repeat_n(ztf_alerts(), 10).flatten().collect();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..3)
            .map(|_| s.spawn(|| verdicts(run(&filters, &alerts))))
            .collect();
        for worker in workers {
            let got = worker.join().unwrap();
            for (i, v) in got.iter().enumerate() {
                assert_eq!(v, &alone[i % alone.len()], "alert {i}");
            }
        }
    });
}

#[test]
fn an_oversized_component_is_refused_before_compiling() {
    let sb = bandpass::sandbox::Sandbox::new(bandpass::sandbox::SandboxOptions {
        max_component_bytes: 1000,
        cache: None,
        ..Default::default()
    })
    .unwrap();
    let err = sb
        .load(
            &support::component("bright_transients"),
            vec![],
            Limits::default(),
        )
        .err()
        .unwrap();
    assert!(
        matches!(err, LoadError::TooLarge { max: 1000, .. }),
        "{err}"
    );
}

#[test]
fn an_init_that_refuses_its_parameters_refuses_the_deployment_with_its_message() {
    let err = sandbox()
        .load(&component("hostile_bad_init"), vec![], Limits::default())
        .err()
        .expect("refused");
    assert!(matches!(err, LoadError::Init { .. }), "{err}");
    assert!(
        err.to_string().contains("init refused the parameters"),
        "{err}"
    );
}

#[test]
fn an_init_that_never_returns_runs_out_of_its_fuel_and_is_refused() {
    let limits = Limits {
        fuel_for_init: 10_000_000,
        ..Limits::default()
    };
    let err = sandbox()
        .load(&component("hostile_slow_init"), vec![], limits)
        .err()
        .expect("refused");
    assert!(matches!(err, LoadError::Init { .. }), "{err}");
    assert!(err.to_string().contains("ran out of fuel"), "{err}");
}

#[test]
fn a_reload_keeps_an_unchanged_filter_and_gives_a_quarantined_one_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    let filters = support::filters_dir();
    let text = format!(
        "[kafka]\nbrokers = [\"localhost:9092\"]\n[input]\ntopics = [\"in\"]\ngroup = \"g\"\n\
         [engine]\nquarantine_after = 3\n\
         [[filter]]\npath = \"{}\"\noutput_topic = \"out-bright\"\n\
         [[filter]]\npath = \"{}\"\noutput_topic = \"out-panic\"\n",
        filters.join("bright_transients.wasm").display(),
        filters.join("hostile_panic.wasm").display(),
    );
    let path = dir.path().join("bandpass.toml");
    std::fs::write(&path, &text).unwrap();
    let config = bandpass::config::Config::load(&path).unwrap();
    let sb = sandbox_with(3);
    let first = bandpass::deploy::load_filters(&config, dir.path(), &sb, &[]).unwrap();
    let panicky = &first[1].filter;
    run(std::slice::from_ref(panicky), &ztf_alerts()[..4]);
    assert!(panicky.health.quarantined().is_some());

    let second = bandpass::deploy::load_filters(&config, dir.path(), &sb, &first).unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&first[0].filter, &second[0].filter),
        "an unchanged, healthy filter keeps its loaded instance"
    );
    assert!(
        !std::sync::Arc::ptr_eq(&first[1].filter, &second[1].filter),
        "a quarantined one is loaded anew"
    );
    assert!(second[1].filter.health.quarantined().is_none());

    // The quarantine gauge follows the deployed filter, not a worker's
    // last outcome: 1 for the quarantined one, 0 once reloaded, gone once
    // removed.
    let metrics = bandpass::metrics::Metrics::new();
    let series = "bandpass_filter_quarantined{filter=\"hostile-panic\"}";
    metrics.describe_filters(bandpass::deploy::describe(&first));
    assert!(metrics.encode().contains(&format!("{series} 1")));
    metrics.describe_filters(bandpass::deploy::describe(&second));
    assert!(metrics.encode().contains(&format!("{series} 0")));
    metrics.describe_filters(bandpass::deploy::describe(&second[..1]));
    assert!(!metrics.encode().contains(series));
}

#[test]
fn a_filter_is_named_as_its_deployment_only_once_its_set_runs() {
    let dir = tempfile::tempdir().unwrap();
    let bright = support::filters_dir().join("bright_transients.wasm");
    let config = |first: &str, second: &str| {
        let text = format!(
            "[kafka]\nbrokers = [\"localhost:9092\"]\n[input]\ntopics = [\"in\"]\ngroup = \"g\"\n\
             [[filter]]\npath = \"{}\"\noutput_topic = \"out-{{name}}\"\n\
             sets = [{{ name = \"{first}\" }}, {{ name = \"{second}\", params = {{ max_mag = 17 }} }}]\n",
            bright.display()
        );
        let path = dir.path().join("bandpass.toml");
        std::fs::write(&path, text).unwrap();
        bandpass::config::Config::load(&path).unwrap()
    };
    let sb = sandbox();
    let running =
        bandpass::deploy::load_filters(&config("wide", "narrow"), dir.path(), &sb, &[]).unwrap();
    let names = |d: &[bandpass::deploy::Deployment]| -> Vec<String> {
        d.iter().map(|d| d.filter.deployment()).collect()
    };
    // Loaded, not yet running: the component's name.
    assert_eq!(names(&running), ["bright-transients", "bright-transients"]);
    bandpass::deploy::Deployment::name_filters(&running);
    assert_eq!(names(&running), ["wide", "narrow"]);
    // A reload that swaps the names reuses both filters, and a load that
    // may yet be refused renames neither of the running ones.
    let reload =
        bandpass::deploy::load_filters(&config("narrow", "wide"), dir.path(), &sb, &running)
            .unwrap();
    // (The first set keeps its parameters under the other name.)
    assert!(std::sync::Arc::ptr_eq(
        &running[0].filter,
        &reload[0].filter
    ));
    assert_eq!(names(&running), ["wide", "narrow"]);
    bandpass::deploy::Deployment::name_filters(&reload);
    assert_eq!(names(&reload), ["narrow", "wide"]);
}

#[test]
fn one_component_deployed_twice_needs_a_name_for_each_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let bright = support::filters_dir().join("bright_transients.wasm");
    let config = |second_name: &str| {
        let text = format!(
            "[kafka]\nbrokers = [\"localhost:9092\"]\n[input]\ntopics = [\"in\"]\ngroup = \"g\"\n\
             [[filter]]\npath = \"{0}\"\noutput_topic = \"out-a\"\n\
             [[filter]]\npath = \"{0}\"\noutput_topic = \"out-b\"\nparams = {{ max_mag = \"17\" }}\n{second_name}",
            bright.display()
        );
        let path = dir.path().join("bandpass.toml");
        std::fs::write(&path, text).unwrap();
        bandpass::config::Config::load(&path)
    };
    let sb = sandbox();
    let twice = config("").unwrap();
    let err = bandpass::deploy::load_filters(&twice, dir.path(), &sb, &[])
        .err()
        .expect("two deployments named alike are refused");
    assert!(
        err.to_string().contains("filter[1] (")
            && err
                .to_string()
                .contains("named 'bright-transients' like an earlier filter"),
        "{err}"
    );
    let named = config("name = \"bright-strict\"\n").unwrap();
    let deployments = bandpass::deploy::load_filters(&named, dir.path(), &sb, &[]).unwrap();
    let names: Vec<&str> = deployments.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["bright-transients", "bright-strict"]);
    let err = config("name = \"Bright Strict\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("filter[1].name") && err.contains("lowercase"),
        "{err}"
    );
}
