//! `pbp bench avro`: encode and decode realistic `PlayEvent`s with pbp-avro's codec (through the
//! `pbp_dataflow::Codec` trait, Confluent framing included) and, in the same run, with apache-avro's `Value`
//! path (`to_value`, resolve, write; read, `from_value`) and, for reference, apache-avro's schema-aware serde
//! path (`write_ser` / `read_deser`). Last stdout line: one JSON object.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use clap::Args;
use pbp_avro::registry::EmbeddedRegistry;
use pbp_avro::{AvroCodec, AvroRecord, ChangeKind, Coordinate, PlayEvent, Side};
use pbp_dataflow::Codec;

/// Options of `pbp bench avro`.
#[derive(Debug, Args)]
pub(crate) struct AvroArgs {
    /// Records encoded and decoded per path (after a warm-up of a tenth of that).
    #[arg(long, default_value_t = 200_000)]
    pub(crate) records: usize,
}

/// Realistic plays: texts, types, participants and clocks as the recorded NBA games have them, with a
/// tenth of the plays sparse (no team, no coordinate, no participants) like period ends and reviews.
fn plays(n: usize) -> Vec<PlayEvent> {
    const KINDS: [(&str, &str, &str, i32, bool); 8] = [
        ("jump_shot", "92", "Jayson Tatum makes 26-foot three point jumper (Jrue Holiday assists)", 3, true),
        ("defensive_rebound", "155", "Paolo Banchero defensive rebound", 0, false),
        ("driving_layup_shot", "110", "Jaylen Brown makes driving layup", 2, true),
        ("free_throw_1_of_2", "98", "Franz Wagner makes free throw 1 of 2", 1, true),
        ("substitution", "584", "Jonathan Isaac enters the game for Wendell Carter Jr.", 0, false),
        ("shooting_foul", "44", "Kristaps Porzingis shooting foul", 0, false),
        ("bad_pass_turnover", "62", "Jalen Suggs bad pass (Derrick White steals)", 0, false),
        ("pullup_jump_shot", "131", "Derrick White misses 18-foot pullup jump shot", 2, false),
    ];
    let base = PlayEvent::example();
    (0..n)
        .map(|i| {
            if i % 10 == 9 {
                let mut p = PlayEvent::example_sparse();
                p.sequence = i as i64;
                return p;
            }
            let (event_type, type_id, text, value, made) = KINDS[i % KINDS.len()];
            let seconds = 720.0 - (i % 720) as f64;
            let period = 1 + (i / 720 % 4) as i32;
            PlayEvent {
                play_id: format!("401585607{i}"),
                sequence: i as i64,
                period,
                clock_display: format!("{}:{:02}", seconds as i64 / 60, seconds as i64 % 60),
                clock_seconds: seconds,
                game_seconds_left: f64::from(4 - period) * 720.0 + seconds,
                event_type: event_type.to_owned(),
                espn_type_id: type_id.to_owned(),
                espn_type_text: event_type.replace('_', " "),
                team_id: Some(if i % 2 == 0 { "19" } else { "2" }.to_owned()),
                side: Some(if i % 2 == 0 { Side::Home } else { Side::Away }),
                home_score: (i / 9) as i32,
                away_score: (i / 10) as i32,
                score_value: if made { value } else { 0 },
                scoring_play: made,
                shooting_play: value > 0,
                shot_value: (value > 0).then_some(value),
                coordinate: (value > 1).then_some(Coordinate { x: (i % 50) as i32, y: (i % 30) as i32 }),
                wallclock: Some(1_710_713_444_000 + i as i64 * 7_000),
                participants: (0..(i % 3) + 1).map(|k| format!("44325{}{k}", i % 97)).collect(),
                text: text.to_owned(),
                change: if i % 50 == 0 { ChangeKind::Update } else { ChangeKind::New },
                fetched_at: 1_710_713_446_000 + i as i64 * 7_000,
                ..base.clone()
            }
        })
        .collect()
}

/// Encodes then decodes every record `rounds` times with `round_trip`; returns the time per record.
fn time(
    records: &[PlayEvent],
    mut round_trip: impl FnMut(&PlayEvent) -> anyhow::Result<PlayEvent>,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for record in records {
        black_box(round_trip(black_box(record))?);
    }
    Ok(start.elapsed() / records.len().max(1) as u32)
}

pub(crate) async fn run(args: AvroArgs) -> anyhow::Result<()> {
    let n = args.records.max(1);
    let records = plays(n);
    let warmup = &records[..(n / 10).max(1)];

    let registry = Arc::new(EmbeddedRegistry::new());
    let codec = AvroCodec::<PlayEvent>::for_topic(registry, "raw.plays").await?;
    let ours = |p: &PlayEvent| -> anyhow::Result<PlayEvent> {
        let bytes = codec.encode(p)?;
        Ok(codec.decode(bytes.as_ref())?)
    };

    let schema = Schema::parse_str(PlayEvent::SCHEMA)?;
    let writer = GenericDatumWriter::builder(&schema).build()?;
    let reader = GenericDatumReader::builder(&schema).build()?;
    let id = codec.schema_id();
    let value_path = |p: &PlayEvent| -> anyhow::Result<PlayEvent> {
        let mut framed = Vec::with_capacity(256);
        pbp_avro::wire::write_header(&mut framed, id);
        let value = apache_avro::to_value(p)?.resolve(&schema)?;
        writer.write_value_ref(&mut framed, &value)?;
        let (_, mut payload) = pbp_avro::wire::split(&framed)?;
        let value = reader.read_value(&mut payload)?;
        Ok(apache_avro::from_value(&value)?)
    };
    let apache_serde = |p: &PlayEvent| -> anyhow::Result<PlayEvent> {
        let mut framed = Vec::with_capacity(256);
        pbp_avro::wire::write_header(&mut framed, id);
        writer.write_ser(&mut framed, p)?;
        let (_, mut payload) = pbp_avro::wire::split(&framed)?;
        Ok(reader.read_deser(&mut payload)?)
    };

    // Every path must give the records back unchanged before it is timed.
    for p in warmup.iter().take(100) {
        anyhow::ensure!(ours(p)? == *p, "pbp-avro codec changed a record");
        anyhow::ensure!(value_path(p)? == *p, "Value path changed a record");
        anyhow::ensure!(apache_serde(p)? == *p, "apache-avro serde path changed a record");
    }
    let bytes_per_record =
        records.iter().map(|p| codec.encode(p).map(|b| b.map_or(0, |b| b.len()))).sum::<Result<usize, _>>()? / n;

    eprintln!(
        "bench avro: {n} PlayEvent records, {bytes_per_record} bytes each on average (Confluent framing included)"
    );
    time(warmup, ours)?;
    let ours_ns = time(&records, ours)?.as_nanos() as f64;
    eprintln!("  pbp-avro codec:          {ours_ns:>8.0} ns per encode+decode");
    let encoded: Vec<_> = records.iter().map(|p| codec.encode(p)).collect::<Result<_, _>>()?;
    let start = Instant::now();
    for p in &records {
        black_box(codec.encode(black_box(p))?);
    }
    let encode_ns = start.elapsed().as_nanos() as f64 / n as f64;
    let start = Instant::now();
    for bytes in &encoded {
        black_box(codec.decode(black_box(bytes.as_ref()))?);
    }
    let decode_ns = start.elapsed().as_nanos() as f64 / n as f64;
    eprintln!("    of which encode {encode_ns:.0} ns, decode {decode_ns:.0} ns");
    time(warmup, value_path)?;
    let value_ns = time(&records, value_path)?.as_nanos() as f64;
    eprintln!("  apache-avro Value path:  {value_ns:>8.0} ns per encode+decode");
    time(warmup, apache_serde)?;
    let apache_serde_ns = time(&records, apache_serde)?.as_nanos() as f64;
    eprintln!("  apache-avro serde path:  {apache_serde_ns:>8.0} ns per encode+decode (reference)");
    let result = serde_json::json!({
        "bench": "avro",
        "records": n,
        "bytes_per_record": bytes_per_record,
        "ns_per_record": ours_ns,
        "value_path_ns_per_record": value_ns,
        "apache_serde_ns_per_record": apache_serde_ns,
        "encode_ns_per_record": encode_ns.round(),
        "decode_ns_per_record": decode_ns.round(),
        "speedup": (value_ns / ours_ns.max(1.0) * 100.0).round() / 100.0,
    });
    println!("{result}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_on_a_few_records() {
        run(AvroArgs { records: 50 }).await.unwrap();
    }

    #[test]
    fn plays_are_varied_and_valid() {
        let plays = plays(30);
        assert!(plays.iter().any(|p| p.team_id.is_none()));
        assert!(plays.iter().any(|p| p.participants.len() == 3));
        assert_eq!(plays.iter().map(|p| p.event_type.as_str()).collect::<std::collections::HashSet<_>>().len(), 9);
    }
}
