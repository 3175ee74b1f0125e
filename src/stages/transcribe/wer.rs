//! Word error rate: (substitutions + deletions + insertions) / reference words, after
//! lower-casing and dropping punctuation. Used to judge providers on recordings with known text.

/// Errors against a reference, summable over many clips (overall WER = Σ errors / Σ words).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WordErrors {
    /// Substitutions, deletions and insertions.
    pub errors: usize,
    /// Words in the reference.
    pub reference_words: usize,
}

impl WordErrors {
    /// Errors per reference word (0 for an empty reference and an empty hypothesis).
    pub fn rate(&self) -> f64 {
        match self.reference_words {
            0 if self.errors == 0 => 0.0,
            0 => 1.0,
            n => self.errors as f64 / n as f64,
        }
    }
}

impl std::ops::Add for WordErrors {
    type Output = WordErrors;
    fn add(self, other: WordErrors) -> WordErrors {
        WordErrors {
            errors: self.errors + other.errors,
            reference_words: self.reference_words + other.reference_words,
        }
    }
}

impl std::iter::Sum for WordErrors {
    fn sum<I: Iterator<Item = WordErrors>>(iter: I) -> WordErrors {
        iter.fold(WordErrors::default(), |a, b| a + b)
    }
}

/// Lower-cased words with punctuation other than in-word apostrophes removed.
pub fn normalize(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .flat_map(char::to_lowercase)
                .collect::<String>()
                .trim_matches('\'')
                .to_owned()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Levenshtein distance over normalized words.
pub fn word_errors(reference: &str, hypothesis: &str) -> WordErrors {
    let r = normalize(reference);
    let h = normalize(hypothesis);
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            let substitute = prev[j] + usize::from(rw != hw);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    WordErrors {
        errors: prev[h.len()],
        reference_words: r.len(),
    }
}

/// Word error rate of one hypothesis.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    word_errors(reference, hypothesis).rate()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_text_has_no_errors_whatever_the_case_and_punctuation() {
        assert_eq!(
            word_error_rate("Go forward, ten meters.", "go forward ten meters"),
            0.0
        );
    }

    #[test]
    fn substitutions_deletions_and_insertions_each_count_once() {
        let e = word_errors("go forward ten meters", "go backward ten");
        assert_eq!(
            e,
            WordErrors {
                errors: 2,
                reference_words: 4
            }
        );
        assert_eq!(word_errors("a b", "a x b").errors, 1);
        assert_eq!(word_error_rate("a b c d", ""), 1.0);
        assert_eq!(
            word_error_rate("a", "b c d"),
            3.0,
            "insertions can exceed 100%"
        );
    }

    #[test]
    fn overall_rate_weights_clips_by_length() {
        let total: WordErrors = [word_errors("a b c d", "a b c d"), word_errors("e f", "x y")]
            .into_iter()
            .sum();
        assert_eq!(total.rate(), 2.0 / 6.0);
    }

    #[test]
    fn apostrophes_inside_words_are_kept() {
        assert_eq!(
            normalize("I'm 'quoted' DON'T"),
            vec!["i'm", "quoted", "don't"]
        );
    }
}
