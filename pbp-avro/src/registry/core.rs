//! The registry's state and rules, free of any transport: what a registry server and the embedded registry
//! share.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use apache_avro::Schema;

use super::RegistryError;
use super::compat::{Compatibility, check_compatibility};
use super::journal::{JournalEntry, JournalStore};

/// A schema as registered under a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    /// The subject.
    pub subject: String,
    /// The version under the subject, from 1.
    pub version: u32,
    /// The global schema id.
    pub id: u32,
    /// The schema text as first registered.
    pub schema: Arc<str>,
}

/// Which version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSelector {
    /// The highest version.
    Latest,
    /// A version number, from 1.
    Number(u32),
}

impl VersionSelector {
    /// Parses `latest`, `-1` (Confluent's alias of latest) or a positive integer.
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        match text {
            "latest" | "-1" => Ok(Self::Latest),
            _ => match text.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(Self::Number(n)),
                _ => Err(RegistryError::InvalidVersion { version: text.to_owned() }),
            },
        }
    }
}

#[derive(Debug)]
struct Stored {
    text: Arc<str>,
    parsed: Schema,
}

#[derive(Debug, Default)]
struct Subject {
    /// Schema ids by version - 1.
    versions: Vec<u32>,
    compatibility: Option<Compatibility>,
}

/// The registry state: schemas by id (one id per distinct schema, by canonical form, across subjects),
/// subjects with their versions, and compatibility levels. With a journal ([`JournalStore`]), every change is
/// appended to it before it is applied, and [`RegistryCore::open`] replays it.
#[derive(Debug, Default)]
pub struct RegistryCore {
    schemas: Vec<Stored>,
    by_canonical: HashMap<String, u32>,
    subjects: BTreeMap<String, Subject>,
    global: Compatibility,
    journal: Option<Box<dyn JournalStore>>,
}

fn parse(schema: &str) -> Result<Schema, RegistryError> {
    Schema::parse_str(schema).map_err(|e| RegistryError::InvalidSchema { reason: e.to_string() })
}

impl RegistryCore {
    /// An empty, in-memory registry with the default level `BACKWARD`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry backed by `journal`: its entries are replayed now and new changes appended. Entries whose
    /// version or id does not follow on from the ones before are an error: renumbering would give data
    /// already written a different schema.
    pub fn open(mut journal: Box<dyn JournalStore>) -> Result<Self, RegistryError> {
        let mut core = Self::new();
        let entries = journal.replay()?;
        tracing::info!(journal = %journal.describe(), entries = entries.len(), "replaying the schema journal");
        core.journal = Some(journal);
        for entry in entries {
            core.apply(entry)?;
        }
        Ok(core)
    }

    fn apply(&mut self, entry: JournalEntry) -> Result<(), RegistryError> {
        match entry {
            JournalEntry::Register { subject, version, id, schema } => {
                let expected_version = self.subjects.get(&subject).map_or(0, |s| s.versions.len()) + 1;
                if version as usize != expected_version {
                    return Err(RegistryError::Journal {
                        location: self.journal_location(),
                        message: format!("entry for {subject} has version {version}, expected {expected_version}"),
                    });
                }
                let parsed = parse(&schema)?;
                let canonical = parsed.canonical_form();
                let expected_id = u32::try_from(self.schemas.len() + 1).unwrap_or(u32::MAX);
                if id == expected_id {
                    self.schemas.push(Stored { text: schema.into(), parsed });
                    self.by_canonical.insert(canonical, id);
                } else if self.by_canonical.get(&canonical) != Some(&id) {
                    return Err(RegistryError::Journal {
                        location: self.journal_location(),
                        message: format!("entry for {subject} v{version} has id {id}, expected {expected_id}"),
                    });
                }
                self.subjects.entry(subject).or_default().versions.push(id);
            }
            JournalEntry::Config { subject: None, compatibility } => self.global = compatibility,
            JournalEntry::Config { subject: Some(subject), compatibility } => {
                self.subjects.entry(subject).or_default().compatibility = Some(compatibility);
            }
        }
        Ok(())
    }

    /// Where the journal is ([`JournalStore::describe`]), or `None` for a registry kept in memory only.
    pub fn journal(&self) -> Option<String> {
        self.journal.as_ref().map(|j| j.describe())
    }

    fn journal_location(&self) -> String {
        self.journal.as_ref().map_or_else(|| "(memory)".to_owned(), |j| j.describe())
    }

    fn record(&mut self, entry: JournalEntry) -> Result<(), RegistryError> {
        if let Some(journal) = &mut self.journal {
            journal.append(&entry)?;
        }
        self.apply(entry)
    }

    fn subject(&self, subject: &str) -> Result<&Subject, RegistryError> {
        self.subjects
            .get(subject)
            .filter(|s| !s.versions.is_empty())
            .ok_or_else(|| RegistryError::SubjectNotFound { subject: subject.to_owned() })
    }

    fn stored(&self, id: u32) -> Result<&Stored, RegistryError> {
        (id as usize).checked_sub(1).and_then(|i| self.schemas.get(i)).ok_or(RegistryError::SchemaNotFound { id })
    }

    /// The level that applies to `subject`: its own, else the global one.
    pub fn compatibility(&self, subject: Option<&str>) -> Compatibility {
        subject.and_then(|s| self.subjects.get(s)).and_then(|s| s.compatibility).unwrap_or(self.global)
    }

    /// The level set on `subject` itself, if any.
    pub fn subject_compatibility(&self, subject: &str) -> Option<Compatibility> {
        self.subjects.get(subject).and_then(|s| s.compatibility)
    }

    /// Sets the global level (`subject` `None`) or a subject's.
    pub fn set_compatibility(&mut self, subject: Option<&str>, level: Compatibility) -> Result<(), RegistryError> {
        self.record(JournalEntry::Config { subject: subject.map(str::to_owned), compatibility: level })
    }

    /// Registers `schema` under `subject`. An equal schema (same canonical form) already under the subject
    /// returns its existing registration; otherwise the schema must pass the subject's level against the
    /// subject's versions, then gets the next version, and an id: the existing id of an equal schema under
    /// another subject, or a new one.
    pub fn register(&mut self, subject: &str, schema: &str) -> Result<RegisteredSchema, RegistryError> {
        let parsed = parse(schema)?;
        let canonical = parsed.canonical_form();
        let existing_id = self.by_canonical.get(&canonical).copied();
        if let (Some(id), Some(s)) = (existing_id, self.subjects.get(subject))
            && let Some(pos) = s.versions.iter().position(|v| *v == id)
        {
            return self.version(subject, VersionSelector::Number(pos as u32 + 1));
        }
        self.check(subject, &parsed)?;
        let id = existing_id.unwrap_or(u32::try_from(self.schemas.len() + 1).unwrap_or(u32::MAX));
        let version = self.subjects.get(subject).map_or(0, |s| s.versions.len()) as u32 + 1;
        self.record(JournalEntry::Register { subject: subject.to_owned(), version, id, schema: schema.to_owned() })?;
        tracing::info!(subject, version, id, "schema registered");
        self.version(subject, VersionSelector::Number(version))
    }

    fn check(&self, subject: &str, new: &Schema) -> Result<(), RegistryError> {
        let level = self.compatibility(Some(subject));
        let earlier: Vec<&Schema> = match self.subjects.get(subject) {
            Some(s) => s.versions.iter().map(|id| self.stored(*id).map(|s| &s.parsed)).collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        check_compatibility(level, new, &earlier).map_err(|reason| RegistryError::Incompatible {
            subject: subject.to_owned(),
            level: level.to_string(),
            reason,
        })
    }

    /// Whether `schema` passes `subject`'s level (true for a subject without versions). Invalid schemas are
    /// an error.
    pub fn is_compatible(&self, subject: &str, schema: &str) -> Result<Result<(), String>, RegistryError> {
        let parsed = parse(schema)?;
        match self.check(subject, &parsed) {
            Ok(()) => Ok(Ok(())),
            Err(RegistryError::Incompatible { reason, .. }) => Ok(Err(reason)),
            Err(e) => Err(e),
        }
    }

    /// Checks `schema` against one version of `subject` at the subject's level (direction only; the
    /// transitive forms are checked against that one version). The subject and version must exist.
    pub fn is_compatible_with(
        &self,
        subject: &str,
        version: VersionSelector,
        schema: &str,
    ) -> Result<Result<(), String>, RegistryError> {
        let parsed = parse(schema)?;
        let against = self.version(subject, version)?;
        let old = &self.stored(against.id)?.parsed;
        Ok(check_compatibility(self.compatibility(Some(subject)), &parsed, &[old]))
    }

    /// The schema text with id `id`.
    pub fn schema(&self, id: u32) -> Result<Arc<str>, RegistryError> {
        self.stored(id).map(|s| s.text.clone())
    }

    /// Subjects with at least one version, sorted.
    pub fn subjects(&self) -> Vec<String> {
        self.subjects.iter().filter(|(_, s)| !s.versions.is_empty()).map(|(name, _)| name.clone()).collect()
    }

    /// Version numbers of `subject`.
    pub fn versions(&self, subject: &str) -> Result<Vec<u32>, RegistryError> {
        Ok((1..=self.subject(subject)?.versions.len() as u32).collect())
    }

    /// One version of `subject`.
    pub fn version(&self, subject: &str, version: VersionSelector) -> Result<RegisteredSchema, RegistryError> {
        let s = self.subject(subject)?;
        let (number, id) = match version {
            VersionSelector::Latest => (s.versions.len() as u32, s.versions.last().copied()),
            VersionSelector::Number(n) => (n, (n as usize).checked_sub(1).and_then(|i| s.versions.get(i)).copied()),
        };
        let id = id.ok_or_else(|| RegistryError::VersionNotFound {
            subject: subject.to_owned(),
            version: number.to_string(),
        })?;
        Ok(RegisteredSchema { subject: subject.to_owned(), version: number, id, schema: self.schema(id)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::FileJournal;

    const V1: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"int"}]}"#;
    const V2: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"int"},{"name":"b","type":["null","string"],"default":null}]}"#;
    const V2_REQUIRED: &str =
        r#"{"type":"record","name":"T","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#;

    #[test]
    fn ids_are_global_and_versions_per_subject() {
        let mut core = RegistryCore::new();
        let a1 = core.register("a-value", V1).unwrap();
        assert_eq!((a1.id, a1.version), (1, 1));
        // Same schema again (different whitespace): same registration.
        let again = core.register("a-value", &V1.replace(',', ", ")).unwrap();
        assert_eq!(again, a1);
        // Same schema under another subject: same id, version 1 there.
        let b1 = core.register("b-value", V1).unwrap();
        assert_eq!((b1.id, b1.version), (1, 1));
        let a2 = core.register("a-value", V2).unwrap();
        assert_eq!((a2.id, a2.version), (2, 2));
        assert_eq!(core.versions("a-value").unwrap(), vec![1, 2]);
        assert_eq!(core.subjects(), vec!["a-value".to_owned(), "b-value".to_owned()]);
        assert_eq!(core.version("a-value", VersionSelector::Latest).unwrap(), a2);
        assert_eq!(&*core.schema(2).unwrap(), V2);
    }

    #[test]
    fn incompatible_schemas_are_refused_unless_the_level_is_none() {
        let mut core = RegistryCore::new();
        core.register("t-value", V1).unwrap();
        let err = core.register("t-value", V2_REQUIRED).unwrap_err();
        assert!(matches!(err, RegistryError::Incompatible { ref level, .. } if level == "BACKWARD"), "{err}");
        assert_eq!(core.versions("t-value").unwrap(), vec![1]);
        assert!(core.is_compatible("t-value", V2_REQUIRED).unwrap().is_err());
        assert!(core.is_compatible("t-value", V2).unwrap().is_ok());
        assert!(core.is_compatible("new-value", V2_REQUIRED).unwrap().is_ok());
        core.set_compatibility(Some("t-value"), Compatibility::None).unwrap();
        assert_eq!(core.compatibility(Some("t-value")), Compatibility::None);
        assert_eq!(core.compatibility(Some("other")), Compatibility::Backward);
        assert_eq!(core.register("t-value", V2_REQUIRED).unwrap().version, 2);
    }

    #[test]
    fn lookups_of_missing_things_are_typed_errors() {
        let mut core = RegistryCore::new();
        assert!(matches!(core.schema(1), Err(RegistryError::SchemaNotFound { id: 1 })));
        assert!(matches!(core.schema(0), Err(RegistryError::SchemaNotFound { id: 0 })));
        assert!(matches!(core.versions("x"), Err(RegistryError::SubjectNotFound { .. })));
        core.register("x", V1).unwrap();
        assert!(matches!(core.version("x", VersionSelector::Number(2)), Err(RegistryError::VersionNotFound { .. })));
        assert!(matches!(core.register("x", "{not json"), Err(RegistryError::InvalidSchema { .. })));
        assert!(matches!(VersionSelector::parse("0"), Err(RegistryError::InvalidVersion { .. })));
        assert_eq!(VersionSelector::parse("latest").unwrap(), VersionSelector::Latest);
        assert_eq!(VersionSelector::parse("3").unwrap(), VersionSelector::Number(3));
    }

    #[test]
    fn a_journal_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut core = RegistryCore::open(Box::new(FileJournal::open_dir(dir.path()).unwrap())).unwrap();
            core.register("a-value", V1).unwrap();
            core.register("a-value", V2).unwrap();
            core.register("b-value", V1).unwrap();
            core.set_compatibility(None, Compatibility::Full).unwrap();
            core.set_compatibility(Some("b-value"), Compatibility::None).unwrap();
        }
        let core = RegistryCore::open(Box::new(FileJournal::open_dir(dir.path()).unwrap())).unwrap();
        assert_eq!(core.versions("a-value").unwrap(), vec![1, 2]);
        assert_eq!(core.version("b-value", VersionSelector::Latest).unwrap().id, 1);
        assert_eq!(&*core.schema(2).unwrap(), V2);
        assert_eq!(core.compatibility(None), Compatibility::Full);
        assert_eq!(core.compatibility(Some("b-value")), Compatibility::None);
        assert_eq!(core.compatibility(Some("a-value")), Compatibility::Full);
    }
}
