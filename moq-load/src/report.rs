//! The tables of `moq-load compare`, in markdown on stdout.

use crate::compare::{
    Point, Run, Runs, CHURN_TARGET, CHURN_WORKERS, CPU_TARGET, FRAME_SIZE, GROUP_FRAMES,
    HIGH_RATE_DELIVERY, HIGH_RATE_FRAME, HIGH_RATE_SUBSCRIBERS, HIGH_RATE_TARGET, OVERLOAD_P99_MS,
    OVERLOAD_RSS_MIB, RATE,
};
use crate::table::{cell, ratio, verdict, Spread};

pub(crate) fn print_fan_out(points: &[usize], results: &[Point]) {
    println!(
        "Fan-out ({} B × {RATE} fps, {GROUP_FRAMES}-frame groups): median (min–max) of each \
         relay's runs; CPU is the relay's (the floor: the plain-quinn server's) CPU seconds per \
         GB delivered; RSS is the peak.\n",
        FRAME_SIZE
    );
    println!("| subscribers | relay | CPU-s per GB | delivery % | p99 ms | RSS MiB |");
    println!("|---|---|---|---|---|---|");
    for (subscribers, point) in points.iter().zip(results) {
        for (name, runs) in ["ours", "0.6.15", "plain quinn"].iter().zip(point) {
            println!(
                "| {subscribers} | {name} | {} | {} | {} | {} |",
                cell(runs.spread(Run::cpu_per_gb), 2),
                cell(runs.spread(Run::delivery), 2),
                cell(runs.spread(Run::p99), 1),
                cell(runs.spread(Run::rss_mib), 1),
            );
        }
    }
    println!(
        "\nTargets (ratios of medians): CPU ours/0.6.15 at most {CPU_TARGET}; p99 ours/0.6.15 at \
         most 1 (0.5 at 100 and 200); 100 % delivery; CPU at or below the floor.\n"
    );
    println!("| subscribers | CPU ours/0.6.15 | p99 ours/0.6.15 | ours delivers 100 % | CPU ours/floor |");
    println!("|---|---|---|---|---|");
    for (subscribers, [ours, theirs, floor]) in points.iter().zip(results) {
        let p99_target = if *subscribers >= 100 { 0.5 } else { 1.0 };
        let complete = ours.0.iter().all(|run| {
            run.outcome.received == run.outcome.expected() && run.outcome.expected() > 0
        });
        println!(
            "| {subscribers} | {} | {} | {} | {} |",
            ratio(
                ours.spread(Run::cpu_per_gb),
                theirs.spread(Run::cpu_per_gb),
                CPU_TARGET,
                true
            ),
            ratio(
                ours.spread(Run::p99),
                theirs.spread(Run::p99),
                p99_target,
                true
            ),
            verdict(complete),
            ratio(
                ours.spread(Run::cpu_per_gb),
                floor.spread(Run::cpu_per_gb),
                1.0,
                true
            ),
        );
    }
}

pub(crate) fn print_high_rate(best: &[Vec<f64>; 2]) {
    let [ours, theirs] = best.each_ref().map(|runs| Spread::of(runs.iter().copied()));
    let mb_s = |spread: Option<Spread>| {
        spread.map_or(f64::NAN, |s| {
            s.median * (HIGH_RATE_SUBSCRIBERS * HIGH_RATE_FRAME) as f64 / 1e6
        })
    };
    println!(
        "\nHigh rate ({HIGH_RATE_SUBSCRIBERS} subscribers × {} KiB frames): the highest fps \
         delivered at {HIGH_RATE_DELIVERY} % or more (0: none).\n",
        HIGH_RATE_FRAME >> 10
    );
    println!("| ours fps | 0.6.15 fps | ours/0.6.15 (at least {HIGH_RATE_TARGET}) |");
    println!("|---|---|---|");
    println!(
        "| {} ({:.0} MB/s) | {} ({:.0} MB/s) | {} |",
        cell(ours, 0),
        mb_s(ours),
        cell(theirs, 0),
        mb_s(theirs),
        ratio(ours, theirs, HIGH_RATE_TARGET, false)
    );
}

pub(crate) fn print_overload(rate: u32, results: &[Runs; 2]) {
    println!(
        "\nOverload ({HIGH_RATE_SUBSCRIBERS} subscribers × {} KiB × {rate} fps): ours must stay \
         under {OVERLOAD_RSS_MIB} MiB RSS and {OVERLOAD_P99_MS} ms p99.\n",
        HIGH_RATE_FRAME >> 10
    );
    println!("| relay | delivery % | p99 ms | peak RSS MiB | targets met |");
    println!("|---|---|---|---|---|");
    for (name, runs) in ["ours", "0.6.15"].iter().zip(results) {
        let (rss, p99) = (runs.spread(Run::rss_mib), runs.spread(Run::p99));
        let met = rss.is_some_and(|s| s.median < OVERLOAD_RSS_MIB)
            && p99.is_some_and(|s| s.median < OVERLOAD_P99_MS);
        println!(
            "| {name} | {} | {} | {} | {} |",
            cell(runs.spread(Run::delivery), 1),
            cell(p99, 0),
            cell(rss, 1),
            verdict(met)
        );
    }
}

pub(crate) fn print_churn(results: &[Runs; 2]) {
    let rate = |runs: &Runs| Spread::of(runs.0.iter().map(|run| run.outcome.churn_per_sec()));
    let failed: Vec<u64> = results
        .iter()
        .map(|runs| runs.0.iter().map(|run| run.outcome.churn_failed).sum())
        .collect();
    println!(
        "\nChurn ({CHURN_WORKERS} workers subscribing and leaving, one publishing fresh tracks): \
         completed cycles per second.\n"
    );
    println!(
        "| ours | 0.6.15 | ours/0.6.15 (at least {CHURN_TARGET}) | failed cycles (ours, 0.6.15) |"
    );
    println!("|---|---|---|---|");
    println!(
        "| {} | {} | {} | {}, {} |",
        cell(rate(&results[0]), 0),
        cell(rate(&results[1]), 0),
        ratio(rate(&results[0]), rate(&results[1]), CHURN_TARGET, false),
        failed[0],
        failed[1]
    );
}
