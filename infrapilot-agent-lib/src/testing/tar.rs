//! A minimal ustar writer: regular files, directories and symbolic links, enough for a Docker
//! build context held in memory.

/// A tar archive being written in memory.
#[derive(Debug, Default)]
pub(crate) struct Tar {
    bytes: Vec<u8>,
}

const BLOCK: usize = 512;

impl Tar {
    /// Adds a regular file.
    pub(crate) fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.header(path, mode, data.len(), b'0', "");
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    /// Adds a directory.
    pub(crate) fn dir(&mut self, path: &str, mode: u32) {
        self.header(path, mode, 0, b'5', "");
    }

    /// Adds a symbolic link to `target`.
    pub(crate) fn symlink(&mut self, path: &str, target: &str) {
        self.header(path, 0o777, 0, b'2', target);
    }

    /// The archive, closed with its two empty blocks.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(&[0; 2 * BLOCK]);
        self.bytes
    }

    fn header(&mut self, path: &str, mode: u32, size: usize, kind: u8, link: &str) {
        let mut h = [0u8; BLOCK];
        put(&mut h[0..100], path.as_bytes());
        put(&mut h[100..108], format!("{mode:07o}").as_bytes());
        put(&mut h[108..116], b"0000000");
        put(&mut h[116..124], b"0000000");
        put(&mut h[124..136], format!("{size:011o}").as_bytes());
        put(&mut h[136..148], b"00000000000");
        h[148..156].fill(b' ');
        h[156] = kind;
        put(&mut h[157..257], link.as_bytes());
        put(&mut h[257..263], b"ustar\0");
        put(&mut h[263..265], b"00");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        put(&mut h[148..156], format!("{sum:06o}\0 ").as_bytes());
        self.bytes.extend_from_slice(&h);
    }

    fn pad(&mut self) {
        let rest = self.bytes.len() % BLOCK;
        if rest != 0 {
            self.bytes.resize(self.bytes.len() + BLOCK - rest, 0);
        }
    }
}

/// Copies `value` into the start of `field` (callers keep names within the field).
fn put(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_block_aligned_with_valid_checksums() {
        let mut tar = Tar::default();
        tar.dir("rootfs/", 0o755);
        tar.file("rootfs/a", 0o644, b"hello");
        tar.symlink("rootfs/b", "a");
        let bytes = tar.finish();
        // Three headers, one data block, two end blocks.
        assert_eq!(bytes.len(), 6 * BLOCK);
        for header in [
            &bytes[0..BLOCK],
            &bytes[BLOCK..2 * BLOCK],
            &bytes[3 * BLOCK..4 * BLOCK],
        ] {
            let stored = std::str::from_utf8(&header[148..154]).unwrap();
            let mut copy = header.to_vec();
            copy[148..156].fill(b' ');
            let sum: u32 = copy.iter().map(|b| u32::from(*b)).sum();
            assert_eq!(u32::from_str_radix(stored, 8).unwrap(), sum);
        }
        assert_eq!(&bytes[BLOCK + 124..BLOCK + 135], b"00000000005");
        assert_eq!(&bytes[2 * BLOCK..2 * BLOCK + 5], b"hello");
        assert_eq!(bytes[3 * BLOCK + 156], b'2');
        assert_eq!(bytes[3 * BLOCK + 157], b'a');
    }
}
