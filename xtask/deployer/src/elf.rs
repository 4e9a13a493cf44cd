//! The glibc floor of a built binary, read from its ELF version-needs (`.gnu.version_r`): the highest
//! `GLIBC_x.y` any imported symbol requires. Lambda's `provided.al2023` runtime ships glibc 2.34, so a binary
//! needing more would fail at start-up with a loader error; checking before upload turns that into a build error.

use object::Endianness;
use object::read::elf::{ElfFile64, FileHeader};

/// The newest glibc the Lambda runtime offers (Amazon Linux 2023).
pub const LAMBDA_GLIBC: GlibcVersion = GlibcVersion(2, 34);

/// A glibc version `major.minor` (a third component, as in `GLIBC_2.3.4`, does not move the floor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GlibcVersion(pub u32, pub u32);

impl std::fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

impl std::str::FromStr for GlibcVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.split('.');
        let major = parts.next().and_then(|p| p.parse().ok());
        let minor = parts.next().and_then(|p| p.parse().ok());
        match (major, minor) {
            (Some(a), Some(b)) => Ok(GlibcVersion(a, b)),
            _ => Err(format!("`{s}` is not a glibc version like 2.34")),
        }
    }
}

/// The highest glibc version the (64-bit, either endianness) ELF `data` requires, or `None` when it imports
/// nothing versioned from glibc (a static binary).
pub fn glibc_floor(data: &[u8]) -> Result<Option<GlibcVersion>, String> {
    let elf = ElfFile64::<Endianness>::parse(data)
        .map_err(|e| format!("not a 64-bit ELF binary: {e}"))?;
    let endian = elf.endian();
    let header = elf.elf_header();
    let sections = header
        .sections(endian, data)
        .map_err(|e| format!("reading ELF sections: {e}"))?;
    let Some((mut needs, link)) = sections
        .gnu_verneed(endian, data)
        .map_err(|e| format!("reading version needs: {e}"))?
    else {
        return Ok(None);
    };
    let strings = sections
        .strings(endian, data, link)
        .map_err(|e| format!("reading version strings: {e}"))?;
    let mut floor: Option<GlibcVersion> = None;
    while let Some((_need, mut auxes)) = needs
        .next()
        .map_err(|e| format!("reading version needs: {e}"))?
    {
        while let Some(aux) = auxes
            .next()
            .map_err(|e| format!("reading version needs: {e}"))?
        {
            let name = aux
                .name(endian, strings)
                .map_err(|e| format!("reading version name: {e}"))?;
            let Some(version) = std::str::from_utf8(name)
                .ok()
                .and_then(|n| n.strip_prefix("GLIBC_"))
            else {
                continue;
            };
            // `GLIBC_PRIVATE` and friends are not versions.
            if let Ok(v) = version.parse::<GlibcVersion>() {
                floor = Some(floor.map_or(v, |f| f.max(v)));
            }
        }
    }
    Ok(floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_test_binary_has_a_plausible_floor() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let floor = glibc_floor(&exe)
            .unwrap()
            .expect("a dynamically linked test binary needs glibc");
        assert!(
            floor >= GlibcVersion(2, 2) && floor < GlibcVersion(3, 0),
            "{floor}"
        );
    }

    #[test]
    fn versions_parse_and_order() {
        assert!("2.34".parse::<GlibcVersion>().unwrap() > "2.26".parse().unwrap());
        assert!("2.3.4".parse::<GlibcVersion>().unwrap() < "2.17".parse().unwrap());
        assert!("PRIVATE".parse::<GlibcVersion>().is_err());
        assert!(glibc_floor(b"not an elf").is_err());
    }
}
