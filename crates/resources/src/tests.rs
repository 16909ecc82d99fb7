use super::*;

fn res(list: Vec<Resource>) -> Resources {
    Resources::new(list).expect("valid resources")
}

fn reserved(mut r: Resource, role: &str) -> Resource {
    r.role = Some(role.to_owned());
    r
}

fn allocated(mut r: Resource, role: &str) -> Resource {
    r.allocation_info = Some(AllocationInfo {
        role: Some(role.to_owned()),
    });
    r
}

fn parse(text: &str) -> Resources {
    Resources::parse(text, "*").expect("valid --resources")
}

fn invalid_reason(r: Resource) -> String {
    match Resources::new(vec![r]) {
        Err(Error::Invalid { reason, .. }) => reason,
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
}

fn entry_error(text: &str) -> String {
    match Resources::parse(text, "*") {
        Err(e @ Error::Entry { .. }) => e.to_string(),
        other => panic!("expected Error::Entry for {text:?}, got {other:?}"),
    }
}

fn ranges_of(r: &Resources, name: &str) -> Vec<(u64, u64)> {
    r.iter()
        .filter(|r| r.name == name)
        .flat_map(|r| r.ranges.map(|r| r.range).unwrap_or_default())
        .map(|r| (r.begin, r.end))
        .collect()
}

// --- validation -------------------------------------------------------------------

#[test]
fn empty_name_is_refused() {
    assert_eq!(
        invalid_reason(Resource::scalar("", 1.0)),
        "the name is empty"
    );
}

#[test]
fn text_resources_are_refused() {
    let mut r = Resource::scalar("notes", 1.0);
    r.kind = ValueType::Text;
    r.scalar = None;
    assert_eq!(invalid_reason(r), "text resources cannot be offered");
}

#[test]
fn payload_must_match_type() {
    let mut r = Resource::scalar("cpus", 1.0);
    r.kind = ValueType::Ranges;
    assert_eq!(
        invalid_reason(r),
        "type is RANGES but it has a 'scalar' value (only 'ranges' belongs with it)"
    );

    let mut r = Resource::scalar("cpus", 1.0);
    r.scalar = None;
    assert_eq!(
        invalid_reason(r),
        "type is SCALAR but it has no 'scalar' value"
    );

    let mut r = Resource::scalar("cpus", 1.0);
    r.set = Resource::set("x", &["a"]).set;
    assert!(invalid_reason(r).contains("'scalar' and 'set'"));
}

#[test]
fn bad_scalars_are_refused() {
    assert_eq!(
        invalid_reason(Resource::scalar("cpus", -1.0)),
        "scalar value -1 is negative"
    );
    assert_eq!(
        invalid_reason(Resource::scalar("cpus", f64::NAN)),
        "scalar value NaN is not finite"
    );
    assert_eq!(
        invalid_reason(Resource::scalar("cpus", f64::INFINITY)),
        "scalar value inf is not finite"
    );
    assert!(invalid_reason(Resource::scalar("cpus", 1e300)).contains("too large"));
}

#[test]
fn reversed_range_is_refused() {
    assert_eq!(
        invalid_reason(Resource::ranges("ports", &[(10, 5)])),
        "range 10-5 has its begin after its end"
    );
}

#[test]
fn bad_roles_and_names_are_refused() {
    for role in ["", "a b", "a//b", "..", "-a", "a/./b", "a(b)", "a/*"] {
        let reason = invalid_reason(reserved(Resource::scalar("cpus", 1.0), role));
        assert!(reason.starts_with("reservation role"), "{role:?}: {reason}");
    }
    let reason = invalid_reason(allocated(Resource::scalar("cpus", 1.0), "x y"));
    assert!(reason.starts_with("allocation role"), "{reason}");
    for name in ["a:b", "a;b", " cpus", "a(b"] {
        let reason = invalid_reason(Resource::scalar(name, 1.0));
        assert!(reason.contains("name"), "{name:?}: {reason}");
    }
    assert!(invalid_reason(Resource::set("zones", &["a,b"])).contains("set item"));
    assert!(invalid_reason(Resource::set("zones", &[""])).contains("empty"));
    // Hierarchical roles are fine.
    res(vec![reserved(Resource::scalar("cpus", 1.0), "eng/web")]);
}

#[test]
fn invalid_error_names_resource_and_position() {
    let err = Resources::new(vec![
        Resource::scalar("cpus", 1.0),
        Resource::scalar("mem", -5.0),
    ])
    .expect_err("negative mem");
    assert_eq!(
        err.to_string(),
        "invalid resource 'mem' (index 1): scalar value -5 is negative"
    );
}

// --- normalization ----------------------------------------------------------------

#[test]
fn same_kind_pieces_merge() {
    let r = res(vec![
        Resource::scalar("cpus", 1.0),
        Resource::scalar("cpus", 2.5),
        Resource::ranges("ports", &[(1, 3)]),
        Resource::ranges("ports", &[(4, 5), (10, 12)]),
        Resource::ranges("ports", &[(11, 20)]),
        Resource::set("zones", &["b", "a"]),
        Resource::set("zones", &["c", "a"]),
    ]);
    assert_eq!(r.len(), 3);
    assert_eq!(r.scalar("cpus"), 3.5);
    assert_eq!(ranges_of(&r, "ports"), vec![(1, 5), (10, 20)]);
    assert_eq!(
        r.to_string(),
        "cpus:3.5; ports:[1-5, 10-20]; zones:{a, b, c}"
    );
}

#[test]
fn zero_and_empty_are_dropped() {
    let r = res(vec![
        Resource::scalar("cpus", 0.0),
        Resource::scalar("gpus", 0.0004),
        Resource::ranges("ports", &[]),
        Resource::set("zones", &[]),
    ]);
    assert!(r.is_empty());
    assert_eq!(r, Resources::default());
}

#[test]
fn absent_role_and_star_are_both_unreserved() {
    let a = res(vec![Resource::scalar("cpus", 1.0)]);
    let b = res(vec![reserved(Resource::scalar("cpus", 1.0), "*")]);
    assert_eq!(a, b);
    let both = res(vec![
        Resource::scalar("cpus", 1.0),
        reserved(Resource::scalar("cpus", 1.0), "*"),
    ]);
    assert_eq!(both.len(), 1);
    assert_eq!(both.scalar("cpus"), 2.0);
}

#[test]
fn roles_and_allocations_keep_pieces_apart() {
    let r = res(vec![
        Resource::scalar("cpus", 1.0),
        reserved(Resource::scalar("cpus", 2.0), "a"),
        allocated(Resource::scalar("cpus", 4.0), "x"),
        allocated(reserved(Resource::scalar("cpus", 8.0), "a"), "x"),
        // An allocation_info without a role is no allocation.
        Resource {
            allocation_info: Some(AllocationInfo::default()),
            ..Resource::scalar("cpus", 16.0)
        },
    ]);
    assert_eq!(r.len(), 4);
    assert_eq!(r.scalar("cpus"), 31.0);
}

#[test]
fn same_name_with_two_types_stays_apart() {
    let r = res(vec![
        Resource::scalar("odd", 1.0),
        Resource::ranges("odd", &[(1, 2)]),
    ]);
    assert_eq!(r.len(), 2);
    assert_eq!(r.scalar("odd"), 1.0);
}

// --- fixed point ------------------------------------------------------------------

#[test]
fn fixed_point_sums_are_exact() {
    let a = res(vec![Resource::scalar("cpus", 0.1)]);
    let b = res(vec![Resource::scalar("cpus", 0.2)]);
    let mut sum = a.clone();
    sum += &b;
    assert_eq!(sum.scalar("cpus"), 0.3);
    assert_eq!(sum, res(vec![Resource::scalar("cpus", 0.3)]));

    let mut total = Resources::default();
    for _ in 0..10 {
        total += &a;
    }
    assert_eq!(total, res(vec![Resource::scalar("cpus", 1.0)]));
    assert_eq!(total.scalar("cpus"), 1.0);
    for _ in 0..10 {
        total -= &a;
    }
    assert!(total.is_empty(), "left over: {total}");
}

#[test]
fn fixed_point_rounds_to_thousandths() {
    let r = res(vec![Resource::scalar("cpus", 0.0005)]);
    assert_eq!(r.scalar("cpus"), 0.001);
    let r = res(vec![Resource::scalar("cpus", 1.23449)]);
    assert_eq!(r.scalar("cpus"), 1.234);
    // Values equal after rounding satisfy each other.
    let a = res(vec![Resource::scalar("mem", 1.0001)]);
    let b = res(vec![Resource::scalar("mem", 0.9999)]);
    assert!(a.contains(&b) && b.contains(&a));
    assert_eq!(a, b);
}

#[test]
fn many_small_steps_do_not_drift() {
    let step = res(vec![Resource::scalar("cpus", 0.001)]);
    let mut total = Resources::default();
    for _ in 0..100_000 {
        total.add(&step);
    }
    assert_eq!(total.scalar("cpus"), 100.0);
    for _ in 0..100_000 {
        total.subtract(&step);
    }
    assert!(total.is_empty());
}

// --- arithmetic -------------------------------------------------------------------

#[test]
fn scalar_subtraction_floors_at_zero() {
    let mut r = res(vec![Resource::scalar("cpus", 1.0)]);
    r.subtract(&res(vec![Resource::scalar("cpus", 3.0)]));
    assert!(r.is_empty());
    // Subtracting what is not there is a no-op.
    let mut r = res(vec![Resource::scalar("cpus", 1.0)]);
    r.subtract(&res(vec![
        Resource::scalar("mem", 3.0),
        reserved(Resource::scalar("cpus", 1.0), "a"),
    ]));
    assert_eq!(r.scalar("cpus"), 1.0);
}

#[test]
fn range_subtraction_splits() {
    let mut r = res(vec![Resource::ranges("ports", &[(1, 10)])]);
    r.subtract(&res(vec![Resource::ranges("ports", &[(4, 6)])]));
    assert_eq!(ranges_of(&r, "ports"), vec![(1, 3), (7, 10)]);

    let mut r = res(vec![Resource::ranges("ports", &[(1, 10), (20, 30)])]);
    r.subtract(&res(vec![Resource::ranges(
        "ports",
        &[(0, 1), (5, 5), (9, 21), (30, 40)],
    )]));
    assert_eq!(ranges_of(&r, "ports"), vec![(2, 4), (6, 8), (22, 29)]);

    let mut r = res(vec![Resource::ranges("ports", &[(1, 10)])]);
    r.subtract(&res(vec![Resource::ranges("ports", &[(0, 100)])]));
    assert!(r.is_empty());
}

#[test]
fn ranges_at_the_top_of_u64() {
    let max = u64::MAX;
    let r = res(vec![
        Resource::ranges("ids", &[(max - 1, max)]),
        Resource::ranges("ids", &[(max, max), (0, 0)]),
    ]);
    assert_eq!(ranges_of(&r, "ids"), vec![(0, 0), (max - 1, max)]);
    let mut s = r.clone();
    s.subtract(&res(vec![Resource::ranges("ids", &[(max, max)])]));
    assert_eq!(ranges_of(&s, "ids"), vec![(0, 0), (max - 1, max - 1)]);
    s.subtract(&res(vec![Resource::ranges("ids", &[(0, max)])]));
    assert!(s.is_empty());
}

#[test]
fn set_arithmetic() {
    let mut r = res(vec![Resource::set("zones", &["a", "b", "c"])]);
    assert!(r.contains(&res(vec![Resource::set("zones", &["a", "c"])])));
    assert!(!r.contains(&res(vec![Resource::set("zones", &["a", "d"])])));
    r.subtract(&res(vec![Resource::set("zones", &["b", "d"])]));
    assert_eq!(r, res(vec![Resource::set("zones", &["a", "c"])]));
    r.add(&res(vec![Resource::set("zones", &["d"])]));
    assert_eq!(r.to_string(), "zones:{a, c, d}");
}

#[test]
fn contains_checks_every_piece() {
    let have = res(vec![
        Resource::scalar("cpus", 4.0),
        Resource::scalar("mem", 1024.0),
        Resource::ranges("ports", &[(31000, 32000)]),
    ]);
    assert!(have.contains(&Resources::default()));
    assert!(have.contains(&have));
    assert!(have.contains(&res(vec![
        Resource::scalar("cpus", 4.0),
        Resource::ranges("ports", &[(31000, 31000), (31500, 32000)]),
    ])));
    assert!(!have.contains(&res(vec![Resource::scalar("cpus", 4.001)])));
    assert!(!have.contains(&res(vec![Resource::scalar("gpus", 1.0)])));
    assert!(!have.contains(&res(vec![Resource::ranges("ports", &[(30999, 31000)])])));
}

#[test]
fn contains_respects_reservations() {
    let reserved_a = res(vec![reserved(Resource::scalar("cpus", 8.0), "a")]);
    let unreserved = res(vec![Resource::scalar("cpus", 1.0)]);
    assert!(!reserved_a.contains(&unreserved));
    assert!(!unreserved.contains(&res(vec![reserved(Resource::scalar("cpus", 1.0), "a")])));
    assert!(!reserved_a.contains(&res(vec![reserved(Resource::scalar("cpus", 1.0), "b")])));
    assert!(reserved_a.contains(&res(vec![reserved(Resource::scalar("cpus", 8.0), "a")])));
}

#[test]
fn contains_respects_allocations() {
    let offered = res(vec![Resource::scalar("cpus", 2.0)]).allocated_to("web");
    let task = res(vec![Resource::scalar("cpus", 1.0)]);
    assert!(!offered.contains(&task));
    assert!(offered.contains(&task.allocated_to("web")));
    assert!(!offered.contains(&task.allocated_to("db")));
    assert!(offered.unallocated().contains(&task));
}

#[test]
fn allocation_helpers() {
    let total = res(vec![
        Resource::scalar("cpus", 4.0),
        reserved(Resource::scalar("cpus", 2.0), "a"),
        Resource::ranges("ports", &[(1, 5)]),
    ]);
    let web = total.allocated_to("web");
    assert!(web
        .iter()
        .all(|r| r.allocation_info.and_then(|a| a.role).as_deref() == Some("web")));
    assert_eq!(web.unallocated(), total);

    let mut mixed = web.clone();
    mixed.add(&res(vec![allocated(Resource::scalar("cpus", 1.0), "db")]));
    assert_eq!(mixed.filter_allocated("web"), web);
    assert_eq!(
        mixed.filter_allocated("db"),
        res(vec![allocated(Resource::scalar("cpus", 1.0), "db")])
    );
    assert!(mixed.filter_allocated("nobody").is_empty());
    assert_eq!(mixed.scalar("cpus"), 7.0);

    // Re-allocating merges pieces that become the same kind.
    let merged = mixed.allocated_to("web");
    assert_eq!(merged.len(), 3);
    assert_eq!(merged.filter_allocated("web").scalar("cpus"), 7.0);
    assert_eq!(mixed.unallocated().scalar("cpus"), 7.0);
    assert_eq!(mixed.unallocated().len(), 3);
}

#[test]
fn scalar_totals() {
    let r = res(vec![
        Resource::scalar("cpus", 1.5),
        reserved(Resource::scalar("cpus", 2.0), "a"),
        allocated(Resource::scalar("cpus", 0.25), "x"),
        Resource::scalar("mem", 64.0),
        Resource::ranges("ports", &[(1, 2)]),
    ]);
    assert_eq!(r.scalar("cpus"), 3.75);
    assert_eq!(r.scalar("gpus"), 0.0);
    assert_eq!(r.scalar("ports"), 0.0);
    let totals = r.scalars();
    assert_eq!(
        totals.into_iter().collect::<Vec<_>>(),
        vec![("cpus".to_owned(), 3.75), ("mem".to_owned(), 64.0)]
    );
}

// --- output -----------------------------------------------------------------------

#[test]
fn output_is_sorted_with_star_for_unreserved() {
    let r = res(vec![
        allocated(Resource::scalar("mem", 1.0), "x"),
        reserved(Resource::scalar("cpus", 1.0), "b"),
        Resource::scalar("mem", 2.0),
        reserved(Resource::scalar("cpus", 1.0), "a"),
        Resource::scalar("cpus", 3.0),
        Resource::set("zones", &["z", "a"]),
    ]);
    let out = r.clone().into_vec();
    let summary: Vec<(String, Option<String>, Option<String>)> = out
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                r.role.clone(),
                r.allocation_info.as_ref().and_then(|a| a.role.clone()),
            )
        })
        .collect();
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        summary,
        vec![
            ("cpus".to_owned(), s("*"), None),
            ("cpus".to_owned(), s("a"), None),
            ("cpus".to_owned(), s("b"), None),
            ("mem".to_owned(), s("*"), None),
            ("mem".to_owned(), s("*"), s("x")),
            ("zones".to_owned(), s("*"), None),
        ]
    );
    assert_eq!(
        out[5].set.as_ref().map(|s| s.item.clone()),
        Some(vec!["a".to_owned(), "z".to_owned()])
    );
    assert_eq!(r.to_vec(), out);
    assert_eq!(r.clone().into_iter().collect::<Vec<_>>(), out);
    // The output is valid input and normalizes to the same value.
    assert_eq!(res(out), r);
}

#[test]
fn wire_output_round_trips_through_json() {
    let r = parse("cpus:0.1; mem(a):512; ports:[1-2, 5-9]; zones:{x,y}").allocated_to("web");
    let json = serde_json::to_string(&r.to_vec()).expect("serialize");
    let back: Vec<Resource> = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(res(back), r);
}

#[test]
fn display_is_mesos_text() {
    let r = res(vec![
        Resource::scalar("cpus", 4.0),
        Resource::scalar("mem", 4096.0),
        reserved(Resource::scalar("disk", 100.0), "role"),
        Resource::ranges("ports", &[(31000, 32000)]),
        allocated(Resource::scalar("gpus", 0.125), "web"),
    ]);
    assert_eq!(
        r.to_string(),
        "cpus:4; disk(role):100; gpus:0.125; mem:4096; ports:[31000-32000]"
    );
    assert_eq!(Resources::default().to_string(), "");
    assert_eq!(
        res(vec![Resource::scalar("x", 1234.05)]).to_string(),
        "x:1234.05"
    );
}

#[test]
fn display_round_trips() {
    let cases = [
        res(vec![
            Resource::scalar("cpus", 0.1),
            Resource::scalar("mem", 1e12),
            reserved(Resource::scalar("cpus", 2.5), "eng/web"),
            Resource::ranges("ports", &[(1, 1), (3, 9), (u64::MAX, u64::MAX)]),
            Resource::set("zones", &["us-east", "eu"]),
            reserved(Resource::set("gpus_ids", &["0"]), "ml"),
        ]),
        default_agent_resources(8.0, 15_000.5, 100_000.0),
        Resources::default(),
    ];
    for r in cases {
        assert_eq!(Resources::parse(&r.to_string(), "*"), Ok(r.clone()), "{r}");
    }
}

#[test]
fn default_agent_resources_match_mesos() {
    let r = default_agent_resources(4.0, 2048.0, 10240.0);
    assert_eq!(
        r.to_string(),
        "cpus:4; disk:10240; mem:2048; ports:[31000-32000]"
    );
    assert_eq!(
        default_agent_resources(f64::NAN, -1.0, 0.0).to_string(),
        "ports:[31000-32000]"
    );
}

// --- parse: text ------------------------------------------------------------------

#[test]
fn parse_text_forms() {
    let r = parse(" cpus : 4 ; mem:1024.5;ports:[31000-32000, 33000-33010] ; zones:{ a , b };");
    assert_eq!(r.scalar("cpus"), 4.0);
    assert_eq!(r.scalar("mem"), 1024.5);
    assert_eq!(ranges_of(&r, "ports"), vec![(31000, 32000), (33000, 33010)]);
    assert_eq!(
        r.to_string(),
        "cpus:4; mem:1024.5; ports:[31000-32000, 33000-33010]; zones:{a, b}"
    );
    assert!(r.iter().all(|r| r.role.as_deref() == Some("*")));
}

#[test]
fn parse_single_port_forms() {
    assert_eq!(parse("ports:[80]"), parse("ports:[80-80]"));
    assert_eq!(
        ranges_of(&parse("ports:[80, 81-90, 443]"), "ports"),
        vec![(80, 90), (443, 443)]
    );
}

#[test]
fn parse_roles() {
    let r = parse("cpus(a):2; cpus:1; disk(*):5");
    assert_eq!(
        r,
        res(vec![
            reserved(Resource::scalar("cpus", 2.0), "a"),
            Resource::scalar("cpus", 1.0),
            Resource::scalar("disk", 5.0),
        ])
    );
    let r = Resources::parse("cpus:2; mem(b):8; disk(*):5", "a").expect("parse");
    assert_eq!(
        r,
        res(vec![
            reserved(Resource::scalar("cpus", 2.0), "a"),
            reserved(Resource::scalar("mem", 8.0), "b"),
            Resource::scalar("disk", 5.0),
        ])
    );
}

#[test]
fn parse_duplicates_add_up() {
    assert_eq!(parse("cpus:1; cpus:0.5"), parse("cpus:1.5"));
    assert_eq!(parse("ports:[1-5]; ports:[6-7]"), parse("ports:[1-7]"));
    assert_eq!(parse("z:{a}; z:{b}"), parse("z:{a,b}"));
}

#[test]
fn parse_empty_things() {
    assert!(parse("").is_empty());
    assert!(parse(" ; ;").is_empty());
    assert!(parse("ports:[]; zones:{}; cpus:0").is_empty());
}

#[test]
fn parse_text_errors() {
    let cases = [
        ("cpus:x", "'x' is not a number"),
        ("cpus", "there is no ':' between the name and the value"),
        (":4", "the name before the ':' is empty"),
        ("cpus:", "the value after the ':' is empty"),
        ("cpus(a:4", "the role has no closing ')' before the ':'"),
        ("cpus():4", "the role between '(' and ')' is empty"),
        ("cpus(a b):4", "reservation role 'a b' contains ' '"),
        ("cpus:-1", "scalar value -1 is negative"),
        ("cpus:inf", "scalar value inf is not finite"),
        ("ports:[1-5", "ranges '[1-5' have no closing ']'"),
        ("ports:[5-1]", "range 5-1 has its begin after its end"),
        (
            "ports:[a-5]",
            "'a' in range 'a-5' is not a non-negative integer",
        ),
        (
            "ports:[-1-5]",
            "range '-1-5' is not of the form begin-end or a single number",
        ),
        ("ports:[1-2,,3]", "there is an empty range between commas"),
        ("zones:{a,b", "set '{a,b' has no closing '}'"),
        ("zones:{a,,b}", "there is an empty set item between commas"),
        ("cp)us:1", "the name contains ')'"),
    ];
    for (text, reason) in cases {
        let message = entry_error(text);
        assert!(
            message.starts_with(&format!("invalid --resources entry '{text}': {reason}")),
            "{text:?}: {message}"
        );
    }
}

#[test]
fn parse_error_has_example() {
    assert_eq!(
        entry_error("mem:1; cpus:x ;disk:2"),
        "invalid --resources entry 'cpus:x': 'x' is not a number \
         (expected e.g. cpus:4, ports:[31000-32000] or zones:{a,b})"
    );
}

#[test]
fn parse_refuses_one_name_with_two_types() {
    assert!(entry_error("ports:[1-2]; ports:5")
        .contains("'ports' was already given as RANGES, not SCALAR"));
}

#[test]
fn parse_refuses_bad_default_role() {
    assert!(matches!(
        Resources::parse("cpus:1", "a b"),
        Err(Error::DefaultRole { .. })
    ));
}

// --- parse: JSON ------------------------------------------------------------------

#[test]
fn parse_json() {
    let text = r#"[
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 4}},
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 1024}, "role": "a"},
        {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 1, "end": 5}]}},
        {"name": "zones", "type": "SET", "set": {"item": ["x"]}, "role": "*"}
    ]"#;
    assert_eq!(
        Resources::parse(text, "*"),
        Ok(parse("cpus:4.5; mem(a):1024; ports:[1-5]; zones:{x}"))
    );
    // Role-less JSON resources take the default role; explicit ones keep theirs.
    assert_eq!(
        Resources::parse(text, "b"),
        Ok(parse("cpus(b):4.5; mem(a):1024; ports(b):[1-5]; zones:{x}"))
    );
}

#[test]
fn parse_json_errors() {
    for text in ["[{\"name\": \"cpus\"}]", "[1, 2", "{\"name\": \"cpus\"}"] {
        match Resources::parse(text, "*") {
            Err(e @ Error::Json { .. }) => {
                let message = e.to_string();
                assert!(
                    message.starts_with("invalid --resources JSON: "),
                    "{message}"
                );
                assert!(message.contains("e.g. [{\"name\":\"cpus\""), "{message}");
            }
            other => panic!("{text}: expected Error::Json, got {other:?}"),
        }
    }
    let text = r#"[{"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}]"#;
    assert_eq!(
        Resources::parse(text, "*").map_err(|e| e.to_string()),
        Err("invalid resource 'cpus' (index 0): scalar value -1 is negative".to_owned())
    );
    let text = r#"[{"name": "n", "type": "TEXT"}]"#;
    assert!(matches!(
        Resources::parse(text, "*"),
        Err(Error::Invalid { ref reason, .. }) if reason == "text resources cannot be offered"
    ));
    let text = r#"[{"name": "p", "type": "SCALAR", "scalar": {"value": 1}},
                   {"name": "p", "type": "SET", "set": {"item": []}}]"#;
    assert_eq!(
        Resources::parse(text, "*").map_err(|e| e.to_string()),
        Err("resource 'p' is given as both SCALAR and SET: a name has one type".to_owned())
    );
}
