//! The README's performance table is `examples/latency.rs`'s own output, pasted by
//! `cargo run --release --example latency -- --update-readme`. This test fails when what
//! stands between the markers is not such a table from a release build, or lacks the
//! machine, the date, the repetitions or the spread (min and max) of every row.
#![cfg(not(loom))]

use std::path::Path;

const START: &str = "<!-- latency-table:start -->";
const END: &str = "<!-- latency-table:end -->";

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md")
}

/// The text between the markers; exactly one marked table.
fn latency_table(text: &str) -> &str {
    assert_eq!(
        text.matches(START).count(),
        1,
        "one {START} line in README.md"
    );
    assert_eq!(text.matches(END).count(), 1, "one {END} line in README.md");
    let start = text.find(START).unwrap() + START.len();
    let end = text.find(END).expect("end marker");
    assert!(start < end, "{END} must follow {START}");
    &text[start..end]
}

fn number(cell: &str) -> f64 {
    cell.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{cell:?} is not a number"))
}

/// `"1.5-2.5"` into `(1.5, 2.5)`.
fn range(cell: &str) -> (f64, f64) {
    let (min, max) = cell
        .trim()
        .split_once('-')
        .unwrap_or_else(|| panic!("{cell:?} is not min-max"));
    (number(min), number(max))
}

#[test]
#[cfg_attr(miri, ignore = "reads a file: miri isolates the file system")]
fn readme_latency_table_is_a_release_run_with_machine_date_and_spread() {
    let text = readme();
    let table = latency_table(&text);
    let header = table
        .lines()
        .find(|l| l.starts_with("slotring latency report:"))
        .expect("the report's header line");
    assert!(
        header.contains("release build") && !header.contains("debug"),
        "the README's table must come from a release build: {header}"
    );
    for needle in [
        " runs of ",
        "(median, min, max)",
        "machine: ",
        " cores;",
        "date: ",
        " UTC",
        "the run took ",
    ] {
        assert!(header.contains(needle), "header lacks {needle:?}: {header}");
    }
    let date = header.split("date: ").nth(1).unwrap();
    let bytes = date.as_bytes();
    assert!(
        date.len() >= 10
            && bytes[..10].iter().enumerate().all(|(i, b)| match i {
                4 | 7 => *b == b'-',
                _ => b.is_ascii_digit(),
            }),
        "date is not YYYY-MM-DD: {date}"
    );

    let rows: Vec<Vec<&str>> = table
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "workload",
            "slotring ns/op",
            "slotring min-max",
            "alternative",
            "alternative ns/op",
            "alternative min-max",
            "ratio",
            "atomic floor ns"
        ]
    );
    assert!(rows.len() > 3, "the table has no rows");
    for row in &rows[2..] {
        assert_eq!(row.len(), 8, "{row:?}");
        let (ours, theirs) = (number(row[1]), number(row[4]));
        for (median, spread) in [(ours, range(row[2])), (theirs, range(row[5]))] {
            // The cells are rounded to 0.1 ns.
            assert!(
                spread.0 <= median + 0.05 && median <= spread.1 + 0.05,
                "median outside min-max: {row:?}"
            );
        }
        let ratio = number(row[6]);
        assert!(
            (ratio - ours / theirs).abs() <= 0.01 + 0.06 * ratio,
            "ratio is not slotring / alternative: {row:?}"
        );
    }
}
