//! String interning: attribute names/values, agent versions and task groups are stored once per
//! view and referred to by a 4-byte [`Sym`].

use std::collections::HashMap;
use std::sync::Arc;

/// An interned string of one [`Interner`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Sym(pub(crate) u32);

impl Sym {
    /// The empty string, interned first in every interner (an attribute without a value).
    pub const EMPTY: Sym = Sym(0);

    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

/// Strings stored once each; lookups by string or by [`Sym`].
#[derive(Clone, Debug)]
pub(crate) struct Interner {
    map: HashMap<Arc<str>, Sym>,
    strings: Vec<Arc<str>>,
}

impl Default for Interner {
    fn default() -> Self {
        let mut interner = Interner {
            map: HashMap::new(),
            strings: Vec::new(),
        };
        interner.intern("");
        interner
    }
}

impl Interner {
    /// The symbol of `s`, adding it when new.
    pub fn intern(&mut self, s: &str) -> Sym {
        if let Some(&sym) = self.map.get(s) {
            return sym;
        }
        let sym = Sym(u32::try_from(self.strings.len()).unwrap_or(u32::MAX));
        let shared: Arc<str> = Arc::from(s);
        self.strings.push(shared.clone());
        self.map.insert(shared, sym);
        sym
    }

    /// The symbol of `s` if it was interned.
    pub fn get(&self, s: &str) -> Option<Sym> {
        self.map.get(s).copied()
    }

    /// The string of `sym` (empty for a symbol of another interner that is out of range).
    pub fn resolve(&self, sym: Sym) -> &str {
        self.strings.get(sym.index()).map_or("", |s| s)
    }

    /// How many strings are interned.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.strings.len()
    }
}
