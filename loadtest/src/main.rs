//! Placeholder entry point: the open-loop generator arrives with the loadtest issue.
fn main() {
    eprintln!("smsflow-loadtest: not built yet; see the loadtest issue");
    std::process::exit(2);
}
