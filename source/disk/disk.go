// Package disk reads VM disk snapshots ("disk:PATH") without mounting them and without root.
//
// Containers: raw images (sparse or not) with an MBR (including logical partitions) or GPT table
// (the backup GPT is used when the primary is damaged), or a bare file system; qcow2 v2/v3 images
// (package qcow2), including deflate-compressed clusters and backing chains that stay inside the
// image's directory. LVM2 physical volumes (a partition or the whole disk) are read too: their
// linear logical volumes are searched like partitions (package lvm).
//
// File systems: ext2/3/4 and xfs, read by this package (ext4.go, xfs.go; go-xfs-filesystem still
// decodes xfs B+tree extent maps) and served as fsx.Trees, so that fsx.FS resolves links with
// chroot semantics inside the volume. Files are io.ReaderAt and safe for concurrent reads.
//
// The root file system is found on its own (pickRoot): the first volume holding etc/os-release or
// usr/lib/os-release. Not read: thin, RAID and mirrored LVM volumes, LUKS, btrfs, ZFS, ext4 inline
// data past the inode, xfs realtime volumes and B+tree extent maps on v4 (pre-CRC) xfs.
//
// Corrupt input yields an error that names the image and the partition; every size, count and
// offset read from the image is bounded before use.
package disk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	xfslog "github.com/masahiro331/go-xfs-filesystem/log"
	"go.uber.org/zap"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source"
	"github.com/vigil-sec/vigil/source/disk/lvm"
	"github.com/vigil-sec/vigil/source/disk/partition"
	"github.com/vigil-sec/vigil/source/disk/qcow2"
	"github.com/vigil-sec/vigil/source/fsx"
)

// Opener opens disk images.
type Opener struct{}

// Kind implements source.Opener.
func (Opener) Kind() string { return "disk" }

// Detect implements source.Opener: a regular file that starts like a qcow2 image, a partition table,
// an LVM physical volume or an ext or xfs file system.
func (Opener) Detect(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return false
	}
	var b [1536]byte
	n, _ := io.ReadFull(f, b[:])
	return sniff(b[:n]) != ""
}

// sniff names what the first bytes of a file look like, or "".
func sniff(b []byte) string {
	switch {
	case len(b) >= 4 && string(b[:4]) == qcow2.Magic:
		return "qcow2"
	case len(b) >= 4 && string(b[:4]) == "XFSB":
		return "xfs"
	case len(b) >= 520 && string(b[512:520]) == "EFI PART":
		return "gpt"
	case len(b) >= 1024 && string(b[512:520]) == "LABELONE" && string(b[536:544]) == "LVM2 001":
		return "lvm"
	case len(b) >= 1082 && b[1080] == 0x53 && b[1081] == 0xEF:
		return "ext"
	case len(b) >= 512 && b[510] == 0x55 && b[511] == 0xAA:
		return "mbr"
	}
	return ""
}

// Open implements source.Opener.
func (Opener) Open(ctx context.Context, ref string, opts source.Options) ([]*source.Target, error) {
	t, err := Open(ctx, ref, opts)
	if err != nil {
		return nil, err
	}
	return []*source.Target{t}, nil
}

var quietLibs sync.Once

// silence stops go-xfs-filesystem's logging to stderr (its default logger prints at debug level):
// libraries never print.
func silence() {
	quietLibs.Do(func() {
		nop := zap.NewNop().Sugar()
		xfslog.SetLogger(nop)
	})
}

// Volume is a file system found on a disk.
type Volume struct {
	Partition  string // "p1 (GPT 'root')", or "whole disk"
	Filesystem string // ext2, ext3, ext4, xfs
	FS         *fsx.FS
}

// Open opens the disk image at path and returns a target over its root file system.
func Open(ctx context.Context, path string, opts source.Options) (*source.Target, error) {
	silence()
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", abs)
	}
	var (
		r      io.ReaderAt = f
		size               = fi.Size()
		closer             = f.Close
	)
	var head [4]byte
	if _, err := f.ReadAt(head[:], 0); err == nil && string(head[:]) == qcow2.Magic {
		// Opened by path so that a backing chain (kept inside the image's directory) can be read.
		chain, err := qcow2.OpenFile(abs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", abs, err)
		}
		r, size = chain, chain.Size()
		closer = func() error { return errors.Join(chain.Close(), f.Close()) }
		defer func() {
			if !ok {
				chain.Close()
			}
		}()
	}
	vols, problems, err := Volumes(ctx, r, size, abs, opts.OnProgress)
	if err != nil {
		return nil, err
	}
	root := pickRoot(vols)
	if root == nil {
		if len(problems) > 0 {
			return nil, fmt.Errorf("%s: no readable file system: %w", abs, errors.Join(problems...))
		}
		return nil, fmt.Errorf("%s: no ext2/3/4 or xfs file system found", abs)
	}
	ok = true
	info := model.SourceInfo{Kind: "disk", Name: abs, Partition: root.Partition, Filesystem: root.Filesystem}
	return source.NewTarget(info, root.FS, closer), nil
}

// pickRoot returns the volume that looks most like a root file system: the first with an
// os-release file; else one with a distribution release file or a package database (older
// systems); else one with an etc directory; else the first volume (a data disk can still hold
// language packages).
func pickRoot(vols []Volume) *Volume {
	signs := [][]string{
		{"etc/os-release", "usr/lib/os-release"},
		{"etc/redhat-release", "etc/debian_version", "etc/alpine-release", "etc/SuSE-release", "var/lib/dpkg/status", "var/lib/rpm"},
		{"etc"},
	}
	for _, names := range signs {
		for i, v := range vols {
			for _, p := range names {
				if _, err := v.FS.Stat(p); err == nil {
					return &vols[i]
				}
			}
		}
	}
	if len(vols) > 0 {
		return &vols[0]
	}
	return nil
}

// Volumes opens every ext or xfs file system on the disk in r (size bytes, named name in errors):
// those of each partition, or the bare disk when it has no partition table. Problems with single
// partitions (unknown content, a corrupt superblock, a partition past the end of the disk) are
// returned in problems; err is set only when the disk itself cannot be read.
func Volumes(ctx context.Context, r io.ReaderAt, size int64, name string, progress func(source.Progress)) (vols []Volume, problems []error, err error) {
	var head [4]byte
	if _, err := r.ReadAt(head[:], 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	if string(head[:]) == qcow2.Magic {
		img, err := qcow2.Open(r, size)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		r, size = img, img.Size()
	}
	// A bare file system first: its own magic rules out a partition table at the same place.
	var first [1536]byte
	n, _ := r.ReadAt(first[:], 0)
	kind := sniff(first[:n])
	type piece struct {
		r     io.ReaderAt
		size  int64
		label string
	}
	var pieces []piece
	scheme, parts, err := partition.Read(r, size)
	switch {
	case kind == "ext" || kind == "xfs" || errors.Is(err, partition.ErrNoTable):
		pieces = []piece{{r, size, "whole disk"}}
	case err != nil:
		return nil, nil, fmt.Errorf("%s: %s partition table: %w", name, scheme, err)
	}
	for _, p := range parts {
		if p.Start < 0 || p.End() > size || p.End() < p.Start {
			problems = append(problems, fmt.Errorf("%s %s: partition (bytes %d to %d) lies past the end of the %d-byte disk",
				name, p.Label(), p.Start, p.End(), size))
			continue
		}
		pieces = append(pieces, piece{io.NewSectionReader(r, p.Start, p.Size), p.Size, p.Label()})
	}
	var pvs []*lvm.PV
	for _, p := range pieces {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if progress != nil {
			progress(source.Progress{Stage: "disk", Item: p.label, Total: -1})
		}
		if lvm.Probe(p.r) {
			pv, err := lvm.ReadPV(p.r, p.size)
			if err != nil {
				problems = append(problems, fmt.Errorf("%s %s: %w", name, p.label, err))
				continue
			}
			pvs = append(pvs, pv)
			continue
		}
		v, err := openVolume(p.r, p.size, name, p.label)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		vols = append(vols, *v)
	}
	lvs, lvProblems := lvm.Volumes(pvs)
	for _, e := range lvProblems {
		problems = append(problems, fmt.Errorf("%s: %w", name, e))
	}
	for _, lv := range lvs {
		v, err := openVolume(lv, lv.Size(), name, "LVM "+lv.VG+"/"+lv.Name)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		vols = append(vols, *v)
	}
	return vols, problems, nil
}

// openVolume opens the ext or xfs file system in r, turning panics into errors.
func openVolume(r io.ReaderAt, size int64, disk, part string) (v *Volume, err error) {
	what := disk + " " + part
	defer func() {
		if p := recover(); p != nil {
			v, err = nil, fmt.Errorf("%s: corrupt file system (panic: %v)", what, p)
		}
	}()
	var head [1536]byte
	n, _ := r.ReadAt(head[:], 0)
	switch sniff(head[:n]) {
	case "ext":
		b, sb, err := newExt4(r, size)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		vol := newVolume(b, what+" "+sb.kind())
		if _, err := vol.Lstat("."); err != nil {
			return nil, err
		}
		return &Volume{Partition: part, Filesystem: sb.kind(), FS: fsx.New(vol)}, nil
	case "xfs":
		b, err := newXFS(r, size)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		vol := newVolume(b, what+" xfs")
		if _, err := vol.Lstat("."); err != nil {
			return nil, err
		}
		return &Volume{Partition: part, Filesystem: "xfs", FS: fsx.New(vol)}, nil
	}
	return nil, fmt.Errorf("%s: no ext2/3/4 or xfs file system (%s)", what, describe(head[:n]))
}

func describe(b []byte) string {
	if len(b) == 0 {
		return "empty"
	}
	for _, c := range b {
		if c != 0 {
			return "unknown content"
		}
	}
	return "all zeros"
}

var _ source.Opener = Opener{}
