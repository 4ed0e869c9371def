//! Sizes (`64MiB`) and durations (`5s`) as they are written in manifests and policies.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A number of bytes, written as an integer or with a unit: `512KiB`, `64MiB`, `1GB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub u64);

impl Bytes {
    pub const fn kib(n: u64) -> Bytes {
        Bytes(n * 1024)
    }
    pub const fn mib(n: u64) -> Bytes {
        Bytes(n * 1024 * 1024)
    }
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::str::FromStr for Bytes {
    type Err = String;
    fn from_str(text: &str) -> Result<Bytes, String> {
        let trimmed = text.trim();
        // bytesize accepts an empty number as 0 and fractions of a byte; both are typos here.
        if !trimmed.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("`{text}` is not a size (write e.g. `64MiB`, `512KiB`, `1048576`)"));
        }
        trimmed
            .parse::<bytesize::ByteSize>()
            .map(|size| Bytes(size.as_u64()))
            .map_err(|_| format!("`{text}` is not a size (write e.g. `64MiB`, `512KiB`, `1048576`)"))
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
        for (unit, factor) in UNITS {
            if self.0 >= factor && self.0.is_multiple_of(factor) {
                return write!(f, "{}{unit}", self.0 / factor);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)
            .map_err(|_| serde::de::Error::custom("expected a size such as `64MiB` or a number of bytes"))?
        {
            Raw::Number(n) => Ok(Bytes(n)),
            Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A span of time, written like `5s`, `250ms`, `2m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(pub Duration);

impl Span {
    pub const fn secs(n: u64) -> Span {
        Span(Duration::from_secs(n))
    }
    pub fn get(self) -> Duration {
        self.0
    }
}

impl std::str::FromStr for Span {
    type Err = String;
    fn from_str(text: &str) -> Result<Span, String> {
        humantime::parse_duration(text.trim())
            .map(Span)
            .map_err(|e| format!("`{text}` is not a duration ({e}; write e.g. `5s`, `250ms`)"))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Span, D::Error> {
        let text = String::deserialize(deserializer)
            .map_err(|_| serde::de::Error::custom("expected a duration such as `5s` or `250ms`"))?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Range-checked fields: `#[serde(deserialize_with = "units::bytes_in::<MIN, MAX>")]` and the
/// like. The check runs while the document is read, so an out-of-range value is reported with
/// its file, line and field like any other error, and no later arithmetic on it can overflow.
/// The optional ones take a null (as JSON writes a field that is not set) for not set.
pub fn bytes_in<'de, D: Deserializer<'de>, const MIN: u64, const MAX: u64>(deserializer: D) -> Result<Bytes, D::Error> {
    bytes_within::<D, MIN, MAX>(Bytes::deserialize(deserializer)?)
}

fn bytes_within<'de, D: Deserializer<'de>, const MIN: u64, const MAX: u64>(value: Bytes) -> Result<Bytes, D::Error> {
    if !(MIN..=MAX).contains(&value.0) {
        return Err(serde::de::Error::custom(format!("{value} is out of range ({} to {})", Bytes(MIN), Bytes(MAX))));
    }
    Ok(value)
}

/// [`bytes_in`] for an optional field.
pub fn opt_bytes_in<'de, D: Deserializer<'de>, const MIN: u64, const MAX: u64>(
    deserializer: D,
) -> Result<Option<Bytes>, D::Error> {
    Option::<Bytes>::deserialize(deserializer)?.map(bytes_within::<D, MIN, MAX>).transpose()
}

/// A duration between `MIN_MS` and `MAX_MS` milliseconds.
pub fn span_in<'de, D: Deserializer<'de>, const MIN_MS: u64, const MAX_MS: u64>(deserializer: D) -> Result<Span, D::Error> {
    span_within::<D, MIN_MS, MAX_MS>(Span::deserialize(deserializer)?)
}

fn span_within<'de, D: Deserializer<'de>, const MIN_MS: u64, const MAX_MS: u64>(value: Span) -> Result<Span, D::Error> {
    let (min, max) = (Duration::from_millis(MIN_MS), Duration::from_millis(MAX_MS));
    if !(min..=max).contains(&value.0) {
        return Err(serde::de::Error::custom(format!(
            "{value} is out of range ({} to {})",
            humantime::format_duration(min),
            humantime::format_duration(max)
        )));
    }
    Ok(value)
}

/// [`span_in`] for an optional field.
pub fn opt_span_in<'de, D: Deserializer<'de>, const MIN_MS: u64, const MAX_MS: u64>(
    deserializer: D,
) -> Result<Option<Span>, D::Error> {
    Option::<Span>::deserialize(deserializer)?.map(span_within::<D, MIN_MS, MAX_MS>).transpose()
}

/// An integer between `MIN` and `MAX`.
pub fn int_in<'de, D, T, const MIN: u64, const MAX: u64>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Copy + Into<u64>,
{
    int_within::<D, T, MIN, MAX>(T::deserialize(deserializer)?)
}

fn int_within<'de, D, T, const MIN: u64, const MAX: u64>(value: T) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Copy + Into<u64>,
{
    if !(MIN..=MAX).contains(&value.into()) {
        return Err(serde::de::Error::custom(format!("{} is out of range ({MIN} to {MAX})", value.into())));
    }
    Ok(value)
}

/// [`int_in`] for an optional field.
pub fn opt_int_in<'de, D, T, const MIN: u64, const MAX: u64>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Copy + Into<u64>,
{
    Option::<T>::deserialize(deserializer)?.map(int_within::<D, T, MIN, MAX>).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!("64MiB".parse::<Bytes>().unwrap(), Bytes::mib(64));
        assert_eq!("512KiB".parse::<Bytes>().unwrap(), Bytes::kib(512));
        assert_eq!("1 MiB".parse::<Bytes>().unwrap(), Bytes::mib(1));
        assert_eq!("1MB".parse::<Bytes>().unwrap(), Bytes(1_000_000));
        assert_eq!("4096".parse::<Bytes>().unwrap(), Bytes(4096));
        for bad in ["", "MiB", "-1MiB", "12 parsecs", "lots"] {
            assert!(bad.parse::<Bytes>().is_err(), "{bad:?} parsed");
        }
        assert_eq!(Bytes::mib(64).to_string(), "64MiB");
        assert_eq!(Bytes(1000).to_string(), "1000B");
    }

    #[test]
    fn durations_parse() {
        assert_eq!("5s".parse::<Span>().unwrap(), Span::secs(5));
        assert_eq!("250ms".parse::<Span>().unwrap().get(), Duration::from_millis(250));
        assert!("soon".parse::<Span>().is_err());
        assert!("5".parse::<Span>().is_err());
    }
}
