package harness

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"testing"
)

// TarGzFile is an entry of a .tar.gz and, for a regular file, its content.
type TarGzFile struct {
	Header *tar.Header
	Data   []byte
}

// ReadTarGz reads every entry of the .tar.gz at path, in order.
func ReadTarGz(t testing.TB, path string) []TarGzFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var files []TarGzFile
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, TarGzFile{Header: h, Data: data})
	}
}
