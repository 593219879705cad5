//! Loading recorded ESPN files and recognising them by content (never by file name).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::Value;

use super::FakeError;
use super::live::Replay;
use super::time::us_date_key;
use crate::League;

/// A response body with its `ETag`.
#[derive(Debug, Clone)]
pub(crate) struct Body {
    pub(crate) bytes: Bytes,
    pub(crate) etag: String,
}

impl Body {
    pub(crate) fn new(bytes: Bytes) -> Body {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut hasher);
        Body { etag: format!("\"{:016x}-{}\"", hasher.finish(), bytes.len()), bytes }
    }
}

/// Where a game document keeps its game object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum GameKind {
    /// Site summary: the root is the game.
    Summary,
    /// cdn page: the game is under `gamepackageJSON`.
    Cdn,
}

/// A summary or cdn page of one game.
#[derive(Debug)]
pub(crate) struct GameDoc {
    pub(crate) league: League,
    pub(crate) game_id: String,
    pub(crate) kind: GameKind,
    pub(crate) date_key: Option<String>,
    /// The document with its plays taken out (they are in `plays`), for rendering live snapshots.
    pub(crate) shell: Value,
    pub(crate) plays: Vec<Value>,
    /// The recorded bytes, served when the game is not replayed or the replay has ended.
    pub(crate) body: Body,
    pub(crate) replay: Replay,
}

impl GameDoc {
    /// The game object (`header`, `plays`, …) inside a document.
    pub(crate) fn game_of(kind: GameKind, root: &Value) -> Option<&Value> {
        match kind {
            GameKind::Summary => Some(root),
            GameKind::Cdn => root.get("gamepackageJSON"),
        }
    }

    /// Mutable access to the game object.
    pub(crate) fn game_of_mut(kind: GameKind, root: &mut Value) -> Option<&mut Value> {
        match kind {
            GameKind::Summary => Some(root),
            GameKind::Cdn => root.get_mut("gamepackageJSON"),
        }
    }

    /// The header's first competition.
    pub(crate) fn competition(&self) -> Option<&Value> {
        GameDoc::game_of(self.kind, &self.shell)?.get("header")?.get("competitions")?.get(0)
    }
}

/// Everything the fake server can serve.
#[derive(Debug, Default)]
pub(crate) struct Fixtures {
    pub(crate) games: HashMap<(GameKind, League, String), GameDoc>,
    pub(crate) core_pages: HashMap<(League, String), Body>,
    pub(crate) scoreboards: HashMap<(League, String), Body>,
    pub(crate) teams: HashMap<League, Body>,
}

impl Fixtures {
    /// Loads every `*.json` file in `dir`. Files that are not ESPN documents are skipped with a warning.
    pub(crate) fn load_dir(dir: &Path) -> Result<Fixtures, FakeError> {
        let entries = std::fs::read_dir(dir).map_err(|source| FakeError::Io { path: dir.to_owned(), source })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        paths.sort();
        let mut documents = Vec::with_capacity(paths.len());
        for path in paths {
            let bytes = std::fs::read(&path).map_err(|source| FakeError::Io { path: path.clone(), source })?;
            documents.push((path.display().to_string(), bytes));
        }
        Ok(Fixtures::load_documents(documents))
    }

    /// Loads named documents (name only used in log messages).
    pub(crate) fn load_documents(documents: Vec<(String, Vec<u8>)>) -> Fixtures {
        let mut fixtures = Fixtures::default();
        for (name, bytes) in documents {
            match fixtures.add(bytes) {
                Ok(description) => tracing::info!(file = %name, %description, "Fake ESPN fixture loaded."),
                Err(reason) => tracing::warn!(file = %name, %reason, "Fake ESPN fixture skipped."),
            }
        }
        fixtures
    }

    fn add(&mut self, bytes: Vec<u8>) -> Result<String, String> {
        let root: Value = serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))?;
        let body = Body::new(Bytes::from(bytes));
        if root.get("gamepackageJSON").is_some() {
            self.add_game(GameKind::Cdn, root, body)
        } else if root.get("header").is_some() {
            self.add_game(GameKind::Summary, root, body)
        } else if let Some(reference) = root.get("$ref").and_then(Value::as_str).filter(|_| root.get("items").is_some())
        {
            let league = league_in_url(reference).ok_or("core page without a league in its $ref")?;
            let event = crate::model::id_after_marker(reference, "/events/").ok_or("core page without an event id")?;
            self.core_pages.insert((league, event.to_owned()), body);
            Ok(format!("core plays page {league} {event}"))
        } else if root.get("events").is_some() {
            let league = root
                .pointer("/leagues/0/slug")
                .and_then(Value::as_str)
                .and_then(League::from_slug)
                .ok_or("scoreboard without a known leagues[0].slug")?;
            let date = scoreboard_date(&root).ok_or("scoreboard without a day or an event date")?;
            let description = format!("scoreboard {league} {date}");
            self.scoreboards.insert((league, date), body);
            Ok(description)
        } else if root.get("sports").is_some() {
            let league = root
                .pointer("/sports/0/leagues/0/slug")
                .and_then(Value::as_str)
                .and_then(League::from_slug)
                .ok_or("teams list without a known league slug")?;
            self.teams.insert(league, body);
            Ok(format!("teams {league}"))
        } else {
            Err("not a recognised ESPN document".to_owned())
        }
    }

    fn add_game(&mut self, kind: GameKind, mut root: Value, body: Body) -> Result<String, String> {
        let game = GameDoc::game_of(kind, &root).ok_or("no game object")?;
        let header = game.get("header").ok_or("no header")?;
        let game_id = match header.get("id") {
            Some(Value::String(id)) => id.clone(),
            Some(Value::Number(id)) => id.to_string(),
            _ => return Err("header without an id".to_owned()),
        };
        let league = header
            .pointer("/league/slug")
            .and_then(Value::as_str)
            .and_then(League::from_slug)
            .ok_or("header without a known league slug")?;
        let date_key = header.pointer("/competitions/0/date").and_then(Value::as_str).and_then(us_date_key);
        let plays = GameDoc::game_of_mut(kind, &mut root)
            .and_then(|game| game.get_mut("plays"))
            .map(Value::take)
            .and_then(|plays| match plays {
                Value::Array(plays) => Some(plays),
                _ => None,
            })
            .unwrap_or_default();
        if let Some(game) = GameDoc::game_of_mut(kind, &mut root).and_then(Value::as_object_mut) {
            game.remove("plays");
        }
        let replay = Replay::build(&plays);
        let description = format!("{kind:?} {league} {game_id} ({} plays)", plays.len());
        let doc = GameDoc { league, game_id: game_id.clone(), kind, date_key, shell: root, plays, body, replay };
        self.games.insert((kind, league, game_id), doc);
        Ok(description)
    }
}

fn league_in_url(url: &str) -> Option<League> {
    crate::model::id_after_marker(url, "/leagues/").and_then(League::from_slug)
}

/// `day.date` (`2026-05-02`) when present, else the US date of the first event.
fn scoreboard_date(root: &Value) -> Option<String> {
    if let Some(day) = root.pointer("/day/date").and_then(Value::as_str) {
        let key: String = day.chars().filter(char::is_ascii_digit).collect();
        if key.len() == 8 {
            return Some(key);
        }
    }
    root.pointer("/events/0/date").and_then(Value::as_str).and_then(us_date_key)
}
