//! The registry's building blocks: an object and its keys, and the `const fn`s the
//! tables are written with. A leaf, so that the tables and the checker both stand on it.

/// One key of a JSON object.
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) ty: &'static str,
    pub(crate) optional: bool,
    // Read by the renderer of docs/reference.md, which is built for tests only.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) about: &'static str,
}

/// A named JSON object.
pub(crate) struct Object {
    pub(crate) name: &'static str,
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) about: &'static str,
    pub(crate) fields: &'static [Field],
}

/// A key that is always present.
pub(crate) const fn f(name: &'static str, ty: &'static str, about: &'static str) -> Field {
    Field {
        name,
        ty,
        optional: false,
        about,
    }
}

/// A key that is present only when it applies.
pub(crate) const fn opt(name: &'static str, ty: &'static str, about: &'static str) -> Field {
    Field {
        name,
        ty,
        optional: true,
        about,
    }
}

/// An object of the registry.
pub(crate) const fn obj(
    name: &'static str,
    about: &'static str,
    fields: &'static [Field],
) -> Object {
    Object {
        name,
        about,
        fields,
    }
}
