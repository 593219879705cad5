//! `cargo run --example team_points`: joins, aggregates and dead-letters on the embedded log.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt().with_env_filter("warn").with_writer(std::io::stderr).init();
    let summary = pbp_examples::team_points::run_demo().await?;
    println!("Totals per team:");
    for (team, total) in &summary.totals {
        println!("  {team:>3} {:<4} {:>3} points in {} events", total.abbreviation, total.points, total.events);
    }
    println!("Dead letters:");
    for (key, stage, message) in &summary.dead_letters {
        println!("  key {key:<3} stage {stage:<13} {message}");
    }
    Ok(())
}
