//! Instruction tokeniser: lower-cased words (letters and digits), a vocabulary built from the
//! training datasets' tasks. Id 0 pads, id 1 is every word the vocabulary does not know.

use serde::{Deserialize, Serialize};

/// Padding token id.
pub const PAD: i64 = 0;
/// Unknown-word token id.
pub const UNK: i64 = 1;

/// A word vocabulary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vocabulary {
    /// Known words; word `k` has id `k + 2`.
    pub words: Vec<String>,
}

/// Splits `text` into lower-case words of letters and digits.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

impl Vocabulary {
    /// The sorted set of words of `texts`.
    pub fn build<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vocabulary {
        let mut all: Vec<String> = texts.into_iter().flat_map(|t| words(t).collect::<Vec<_>>()).collect();
        all.sort();
        all.dedup();
        Vocabulary { words: all }
    }

    /// Ids including padding and unknown.
    pub fn size(&self) -> usize {
        self.words.len() + 2
    }

    /// The id of one word.
    pub fn id(&self, word: &str) -> i64 {
        self.words.binary_search_by(|w| w.as_str().cmp(word)).map_or(UNK, |k| k as i64 + 2)
    }

    /// `text` as exactly `max_words` ids (cut or padded with [`PAD`]).
    pub fn encode(&self, text: &str, max_words: usize) -> Vec<i64> {
        let mut ids: Vec<i64> = words(text).take(max_words).map(|w| self.id(&w)).collect();
        ids.resize(max_words, PAD);
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_words_and_padding() {
        let v = Vocabulary::build(["Pick up the red cube", "put the cube in the bin"]);
        assert_eq!(v.words, ["bin", "cube", "in", "pick", "put", "red", "the", "up"]);
        assert_eq!(v.size(), 10);
        // "Pick" → 5, "the" → 8, "GREEN" unknown, "cube." → 3, then padding.
        assert_eq!(v.encode("Pick the GREEN cube.", 6), vec![5, 8, UNK, 3, PAD, PAD]);
        assert_eq!(v.encode("pick up the red cube now", 3), vec![5, 9, 8]);
    }
}
