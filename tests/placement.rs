//! Placement over reactors: one reactor accepts and puts each new connection on the
//! least-loaded reactor, so sessions spread evenly instead of wherever the kernel's hash of the
//! connection would put them.

mod common;

use std::time::{Duration, Instant};

use common::admin::{parse_prometheus, sample, scrape};
use common::{daemon, session_to, TARGET};

/// One figure of each of the two reactors, from `/metrics`.
fn per_reactor(samples: &[common::admin::Sample], name: &str) -> [f64; 2] {
    ["0", "1"].map(|core| sample(samples, name, &[("core", core)]))
}

/// Waits until neither reactor has a connection (the previous round's are closed).
fn wait_idle(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let samples = parse_prometheus(&scrape(addr));
        let conns = per_reactor(&samples, "ringtgt_reactor_connections");
        if conns == [0.0, 0.0] {
            return;
        }
        assert!(Instant::now() < deadline, "connections linger: {conns:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn four_sessions_split_two_and_two_over_two_reactors_round_after_round() {
    let d = daemon(&["--cores", "2", "--metrics", "127.0.0.1:0"]);
    let addr = d.metrics_addr();
    let mut logins = [0.0; 2];
    for round in 0..5 {
        wait_idle(&addr);
        let mut sessions: Vec<_> = (1..=4).map(|who| session_to(&d, TARGET, who)).collect();
        let samples = parse_prometheus(&scrape(&addr));
        let live = per_reactor(&samples, "ringtgt_reactor_sessions");
        assert_eq!(live, [2.0, 2.0], "round {round}: sessions per reactor");
        let total = per_reactor(&samples, "ringtgt_reactor_logins_total");
        let served = [total[0] - logins[0], total[1] - logins[1]];
        assert_eq!(served, [2.0, 2.0], "round {round}: logins per reactor");
        logins = total;
        // The admin listing names the same cores.
        let listed = d.ctl_json(&["sessions"]);
        let on = |core: u64| {
            let all = listed.as_array().expect("sessions");
            all.iter().filter(|s| s["core"] == core).count()
        };
        assert_eq!((on(0), on(1)), (2, 2), "round {round}: {listed}");
        for s in &mut sessions {
            s.logout();
        }
    }
}
