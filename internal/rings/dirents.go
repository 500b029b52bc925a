package rings

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// dirent is one directory entry as getdents64 returns it: enough to tell
// an unchanged (name, inode) from a new one without a stat.
type dirent struct {
	name []byte // aliases the read buffer
	ino  uint64
	typ  uint8
}

// readDirents calls fn for every entry of dir, reading with buf (reused
// between scans, so a rescan of a large directory does not allocate per
// entry). fn's name is only valid during the call.
func readDirents(dir string, buf []byte, fn func(dirent)) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open ring dir %s: %w", dir, err)
	}
	defer unix.Close(fd)
	le := binary.NativeEndian
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("read ring dir %s: %w", dir, err)
		}
		if n <= 0 {
			return nil
		}
		// struct linux_dirent64 { u64 ino; s64 off; u16 reclen; u8 type; char name[]; }
		for off := 0; off+19 <= n; {
			reclen := int(le.Uint16(buf[off+16:]))
			if reclen < 19 || off+reclen > n {
				return fmt.Errorf("read ring dir %s: malformed dirent", dir)
			}
			name := buf[off+19 : off+reclen]
			for i, b := range name {
				if b == 0 {
					name = name[:i]
					break
				}
			}
			fn(dirent{name: name, ino: le.Uint64(buf[off:]), typ: buf[off+18]})
			off += reclen
		}
	}
}
