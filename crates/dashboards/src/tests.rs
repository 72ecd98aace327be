use super::*;
use crate::model::PanelType;

#[test]
fn builtins_are_valid_and_every_expr_parses() {
    let all = builtin().unwrap();
    let uids: Vec<&str> = all.iter().map(|d| d.uid.as_str()).collect();
    assert_eq!(
        uids,
        vec![
            "host", "sextant", "alerts", "targets", "jobs", "llm", "forge", "fleet", "agents",
            "tests"
        ]
    );
    let mut exprs = 0;
    for d in &all {
        assert!(
            d.panels.iter().any(|p| p.kind != PanelType::Row),
            "{}",
            d.uid
        );
        for v in &d.variables {
            if v.kind == model::VariableType::Query {
                // label_values(metric, label): the metric part is a selector.
                let inner = v
                    .query
                    .strip_prefix("label_values(")
                    .and_then(|r| r.rsplit_once(','))
                    .map(|(m, _)| m.trim())
                    .unwrap_or_else(|| panic!("{}: {}", d.uid, v.query));
                sextant_promql::parse(inner).unwrap_or_else(|e| panic!("{}: {inner}: {e}", d.uid));
            }
        }
        for p in &d.panels {
            for t in &p.targets {
                let e = expand_for_check(&t.expr, &d.variables);
                assert!(!e.contains('$'), "{}: unexpanded {e}", d.uid);
                sextant_promql::parse(&e)
                    .unwrap_or_else(|err| panic!("{} / {}: {e}: {err}", d.uid, p.title));
                exprs += 1;
            }
        }
        // Export and re-parse gives the same dashboard.
        for f in [Format::Yaml, Format::Json] {
            let text = export(d, f);
            assert_eq!(&parse(&text, "x", f).unwrap(), d);
        }
    }
    assert!(exprs > 40, "{exprs}");
}

#[test]
fn expand_for_check_substitutes() {
    let vars = vec![
        model::Variable {
            name: "iv".into(),
            kind: model::VariableType::Interval,
            options: vec!["1m".into()],
            ..Default::default()
        },
        model::Variable {
            name: "inst".into(),
            query: "label_values(up, instance)".into(),
            ..Default::default()
        },
    ];
    assert_eq!(
        expand_for_check(
            "rate(x{i=~\"$inst\",j=\"${inst}\"}[$__rate_interval]) + rate(y[$iv]) + z[[[inst]]]",
            &vars
        ),
        "rate(x{i=~\"x\",j=\"x\"}[5m]) + rate(y[1m]) + z[x]"
    );
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn provisioning_precedence_and_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dash");
    std::fs::create_dir(&dir).unwrap();
    write(
        &dir,
        "mine.yml",
        "title: Mine\npanels:\n  - targets: [{expr: up}]\n",
    );
    // A file with a built-in's uid overrides the built-in.
    write(
        &dir,
        "host.json",
        "{\"uid\": \"host\", \"title\": \"My host\"}",
    );
    write(&dir, "notes.txt", "ignored");
    let d = Dashboards::new(
        Store::open(&tmp.path().join("dashboards.db")).unwrap(),
        Some(dir.clone()),
        true,
    )
    .unwrap();
    let list = d.list().unwrap();
    let find = |l: &[Entry], uid: &str| l.iter().find(|e| e.dashboard.uid == uid).cloned().unwrap();
    assert_eq!(list.len(), BUILTIN.len() + 1, "the built-ins plus mine.yml");
    let host = find(&list, "host");
    assert_eq!(
        (host.source, host.dashboard.title.as_str()),
        (Source::File, "My host")
    );
    assert_eq!(find(&list, "alerts").source, Source::Builtin);
    assert_eq!(find(&list, "mine").source, Source::File);
    assert!(find(&list, "mine").path.ends_with("mine.yml"));

    // Saving a provisioned dashboard creates a db copy that overrides the file.
    let mut edited = find(&list, "mine").dashboard;
    edited.title = "Mine, edited".into();
    assert!(matches!(
        d.save("mine", edited.clone(), 3, "x"),
        Err(DashError::Conflict(_))
    ));
    assert_eq!(d.save("mine", edited.clone(), 0, "first edit").unwrap(), 1);
    let e = d.get("mine").unwrap().unwrap();
    assert_eq!((e.source, e.version, e.provisioned), (Source::Db, 1, true));
    assert_eq!(e.dashboard.title, "Mine, edited");
    edited.title = "Mine, again".into();
    assert_eq!(d.save("mine", edited.clone(), 1, "second").unwrap(), 2);
    assert_eq!(d.versions("mine").unwrap().len(), 2);
    assert_eq!(d.version("mine", 1).unwrap().title, "Mine, edited");
    // Creating an existing uid conflicts; a new one works.
    assert!(matches!(
        d.create(edited.clone(), ""),
        Err(DashError::Conflict(_))
    ));
    let fresh = Dashboard {
        uid: "fresh".into(),
        title: "Fresh".into(),
        ..Dashboard::default()
    };
    assert_eq!(d.create(fresh, "new").unwrap(), 1);
    assert!(!d.get("fresh").unwrap().unwrap().provisioned);
    // Deleting the db copy brings the file back; files cannot be deleted.
    d.delete("mine").unwrap();
    assert_eq!(d.get("mine").unwrap().unwrap().source, Source::File);
    assert!(matches!(d.delete("mine"), Err(DashError::Invalid(_))));
    assert!(matches!(d.delete("nope"), Err(DashError::NotFound(_))));
    d.delete("fresh").unwrap();
    assert!(d.get("fresh").unwrap().is_none());
    // Invalid saves are refused with the field.
    let bad = Dashboard {
        uid: "mine".into(),
        title: " ".into(),
        ..Dashboard::default()
    };
    match d.save("mine", bad, 0, "") {
        Err(DashError::Invalid(m)) => assert_eq!(m, "title: must not be empty"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn files_are_reloaded_on_change_and_bad_files_keep_the_old_set() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    write(&dir, "a.yml", "title: A\n");
    let d = Dashboards::new(Store::in_memory().unwrap(), Some(dir.clone()), false).unwrap();
    assert_eq!(d.list().unwrap().len(), 1);
    assert!(!d.poll());
    write(&dir, "b.yaml", "title: B\n");
    assert!(d.poll());
    assert_eq!(d.list().unwrap().len(), 2);
    // A broken file: the poll logs and keeps the previous dashboards; reload reports it.
    write(
        &dir,
        "c.yml",
        "title: C\npanels:\n  - type: timeseries\n    colour: red\n",
    );
    assert!(!d.poll());
    assert_eq!(d.list().unwrap().len(), 2);
    let e = d.reload().unwrap_err().to_string();
    assert!(e.ends_with("c.yml:4: unknown field `colour`, expected one of `type`, `title`, `description`, `grid`, `collapsed`, `targets`, `unit`, `decimals`, `min`, `max`, `thresholds`, `stack`, `log`, `legend`, `reduce`, `sparkline`, `orientation`, `text`, `overrides`") || e.contains("c.yml:4: unknown field `colour`"), "{e}");
    // Two files with one uid.
    std::fs::remove_file(dir.join("c.yml")).unwrap();
    write(&dir, "d.yml", "uid: a\ntitle: D\n");
    let e = d.reload().unwrap_err().to_string();
    assert!(e.contains("uid \"a\" is also used by"), "{e}");
    std::fs::remove_file(dir.join("d.yml")).unwrap();
    std::fs::remove_file(dir.join("b.yaml")).unwrap();
    d.reload().unwrap();
    assert_eq!(d.list().unwrap().len(), 1);
    // A missing directory is an error at start.
    assert!(Dashboards::new(Store::in_memory().unwrap(), Some(dir.join("nope")), false).is_err());
}

#[test]
fn new_uids_are_valid() {
    assert!(model::valid_uid(&new_uid("My board!")));
    assert!(new_uid("My board!").starts_with("my-board-"));
    assert!(model::valid_uid(&new_uid("")));
    assert!(model::valid_uid(&new_uid(&"x".repeat(100))));
}
