package collect

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Sink receives the record's files. Nothing is visible at the final path
// until Commit: a failed collection leaves no half-written record.
type Sink interface {
	Add(name string, data []byte) error
	Commit() error
	// Abort removes whatever was written.
	Abort()
}

// NewSink writes to path: a gzipped tar when it ends in .tar.gz or .tgz,
// else a new directory. An existing path is refused, never overwritten.
func NewSink(path string, now time.Time) (Sink, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("%s already exists: give a new directory or FILE.tar.gz with -o", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	// Written next to the final path, so that the rename stays on one
	// file system.
	tmp, err := os.MkdirTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-")
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(path, ".tar.gz") || strings.HasSuffix(path, ".tgz") {
		file, err := os.OpenFile(filepath.Join(tmp, "record.tar.gz"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			_ = os.RemoveAll(tmp)
			return nil, err
		}
		gz := gzip.NewWriter(file)
		return &tarSink{path: path, tmp: tmp, file: file, gz: gz, tw: tar.NewWriter(gz), now: now}, nil
	}
	return &dirSink{path: path, tmp: tmp}, nil
}

type dirSink struct{ path, tmp string }

func (s *dirSink) Add(name string, data []byte) error {
	target := filepath.Join(s.tmp, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return err
	}
	return os.WriteFile(target, data, 0o600)
}

func (s *dirSink) Commit() error {
	if err := os.Chmod(s.tmp, 0o700); err != nil {
		return err
	}
	return os.Rename(s.tmp, s.path)
}

func (s *dirSink) Abort() { _ = os.RemoveAll(s.tmp) }

type tarSink struct {
	path, tmp string
	file      *os.File
	gz        *gzip.Writer
	tw        *tar.Writer
	now       time.Time
	dirs      map[string]bool
}

func (s *tarSink) Add(name string, data []byte) error {
	if s.dirs == nil {
		s.dirs = map[string]bool{}
	}
	// Directories first, outermost first, so that every extractor makes them.
	var dirs []string
	for dir := filepath.Dir(name); dir != "." && !s.dirs[dir]; dir = filepath.Dir(dir) {
		dirs = append([]string{dir}, dirs...)
	}
	for _, dir := range dirs {
		s.dirs[dir] = true
		if err := s.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o700, ModTime: s.now}); err != nil {
			return err
		}
	}
	if err := s.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o600, Size: int64(len(data)), ModTime: s.now}); err != nil {
		return err
	}
	_, err := s.tw.Write(data)
	return err
}

func (s *tarSink) Commit() error {
	err := errors.Join(s.tw.Close(), s.gz.Close(), s.file.Sync(), s.file.Close())
	if err == nil {
		err = os.Rename(s.file.Name(), s.path)
	}
	_ = os.RemoveAll(s.tmp)
	return err
}

func (s *tarSink) Abort() {
	_ = s.file.Close()
	_ = os.RemoveAll(s.tmp)
}
