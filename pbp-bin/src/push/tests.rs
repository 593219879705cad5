use pbp_store::PlayRevision;

use super::*;
use crate::http::tests::{play, state};

/// What the store says it wrote for `row`: its revision, and the row's sequence as its change number.
fn changed(row: &pbp_store::PlayRow, revision: i64) -> PlayRevision {
    PlayRevision {
        game_id: row.game_id.clone(),
        play_id: row.play_id.clone(),
        revision,
        change_number: row.sequence,
        deleted: false,
    }
}

#[tokio::test]
async fn each_frame_is_serialized_once_and_shared_by_every_session() {
    let hub = Hub::new(16);
    let mut first = hub.subscribe("g");
    let mut second = hub.subscribe("g");
    let row = play("g", 7, 1);
    hub.plays_written(std::slice::from_ref(&row), &[changed(&row, 1)]);
    let (a, b) = (first.recv().await.unwrap(), second.recv().await.unwrap());
    assert_eq!(a.kind(), &FrameKind::Play { play_id: "g7".to_owned(), sequence: 7, revision: 1, change_number: 7 });
    assert_eq!(a.text().as_str().as_ptr(), b.text().as_str().as_ptr(), "the same bytes");
    let json: serde_json::Value = serde_json::from_str(a.text().as_str()).unwrap();
    assert_eq!((json["type"].as_str(), json["game_id"].as_str()), (Some("play"), Some("g")));
    assert_eq!(json["play"]["revision"], 1);
}

#[tokio::test]
async fn only_changed_plays_are_pushed_each_once_as_its_last_version_in_change_order() {
    let hub = Hub::new(16);
    let mut session = hub.subscribe("g");
    let (a, b, c, d) = (play("g", 1, 1), play("g", 2, 2), play("g", 3, 3), play("g", 4, 4));
    let mut b2 = b.clone();
    b2.text = "second version".to_owned();
    // `a` was a re-delivery (not named as changed); `b` came twice (the last version is stored at revision 2,
    // change 12); `c` was numbered 11; `d` was deleted (change 10).
    let written = [
        PlayRevision { change_number: 11, ..changed(&c, 1) },
        PlayRevision { change_number: 12, ..changed(&b2, 2) },
        PlayRevision { change_number: 10, deleted: true, ..changed(&d, 2) },
    ];
    hub.plays_written(&[a, b, c.clone(), d, b2], &written);
    let frames = [session.recv().await.unwrap(), session.recv().await.unwrap(), session.recv().await.unwrap()];
    assert_eq!(frames[0].kind(), &FrameKind::Delete { play_id: "g4".to_owned(), change_number: 10 });
    let deleted: serde_json::Value = serde_json::from_str(frames[0].text().as_str()).unwrap();
    assert_eq!(
        deleted,
        serde_json::json!({"type": "delete", "game_id": "g", "play": {"id": "g4", "sequence": 4, "change_number": 10}})
    );
    assert_eq!(
        frames[1].kind(),
        &FrameKind::Play { play_id: "g3".to_owned(), sequence: 3, revision: 1, change_number: 11 }
    );
    assert_eq!(
        frames[2].kind(),
        &FrameKind::Play { play_id: "g2".to_owned(), sequence: 2, revision: 2, change_number: 12 }
    );
    assert!(frames[2].text().as_str().contains("second version"));
    assert!(frames[2].text().as_str().contains("\"change_number\":12"));
    assert!(session.receiver_is_empty());
}

#[tokio::test]
async fn a_state_is_pushed_when_it_supersedes_the_last_one() {
    let hub = Hub::new(16);
    let mut session = hub.subscribe("g");
    let old = state("g");
    let mut newer = old.clone();
    newer.updated_at += 1;
    newer.plays_applied += 1;
    let mut same_time_other_content = newer.clone();
    same_time_other_content.home_score += 2;
    // In one batch only the last state of a game counts.
    hub.states_written(&[old.clone(), newer.clone()]);
    hub.states_written(std::slice::from_ref(&newer));
    hub.states_written(&[old]);
    hub.states_written(std::slice::from_ref(&same_time_other_content));
    assert_eq!(session.recv().await.unwrap().kind(), &FrameKind::State(Box::new(newer)));
    assert_eq!(session.recv().await.unwrap().kind(), &FrameKind::State(Box::new(same_time_other_content)));
    assert!(session.receiver_is_empty());
}

#[test]
fn a_game_nobody_watches_costs_no_frame_and_its_channel_goes_with_the_last_session() {
    let hub = Hub::new(16);
    let row = play("g", 1, 1);
    hub.plays_written(std::slice::from_ref(&row), &[changed(&row, 1)]);
    hub.states_written(&[state("g")]);
    assert_eq!(hub.watched_games(), 0);
    let first = hub.subscribe("g");
    let mut second = hub.subscribe("g");
    second.skip_queued();
    assert_eq!(hub.watched_games(), 1);
    drop(first);
    assert_eq!(hub.watched_games(), 1);
    drop(second);
    assert_eq!(hub.watched_games(), 0);
}
