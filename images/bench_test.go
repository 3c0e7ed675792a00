package images

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// benchImage writes a ~100 MB image (uncompressed) of four gzip layers:
// two of random, incompressible files and two of text, 100 files each. It
// returns the oci-archive, the same layout as a directory, and the bytes of
// file content.
func benchImage(b *testing.B) (archive, layoutDir string, content int64) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	a := newArchive(b)
	var layers []testLayer
	for l := range 4 {
		var entries []tarEntry
		for f := range 100 {
			body := benchFile(rng, 250<<10, l%2 == 0)
			content += int64(len(body))
			entries = append(entries, file(fmt.Sprintf("layer%d/file%03d", l, f), body, 0o644))
		}
		layers = append(layers, a.layer(entries...))
	}
	a.image(layers...)
	archive = a.write()
	layoutDir = filepath.Join(b.TempDir(), "layout")
	extractTB(b, archive, layoutDir)
	return archive, layoutDir, content
}

// benchFile is n random bytes, or n bytes of text that compresses well.
func benchFile(rng *rand.Rand, n int, random bool) string {
	buf := make([]byte, n)
	if random {
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		return string(buf)
	}
	words := []string{"edge ", "gateway ", "function ", "sensor ", "reading ", "42 ", "\n"}
	var sb strings.Builder
	for sb.Len() < n {
		sb.WriteString(words[rng.IntN(len(words))])
	}
	return sb.String()[:n]
}

func extractTB(b *testing.B, archive, dir string) {
	b.Helper()
	err := walkTar(context.Background(), archive, func(e sourceEntry) error {
		p := filepath.Join(dir, filepath.FromSlash(e.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.ReadFrom(e.r)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkImportUnpack imports (verify, stage, unpack, commit) a ~100 MB
// oci-archive into a fresh store, and times `umoci unpack` of the same
// image as a layout directory in the same run, best of three each,
// interleaved. Throughput is file content over wall time.
func BenchmarkImportUnpack(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: unpacking applies owners, as umoci unpack as root does")
	}
	if _, err := exec.LookPath("umoci"); err != nil {
		b.Skipf("needs umoci: %v", err)
	}
	archive, layout, content := benchImage(b)
	fi, err := os.Stat(archive)
	if err != nil {
		b.Fatal(err)
	}
	var ours, theirs time.Duration
	for b.Loop() {
		ours, theirs = bestOf(b, 3, func() { importOnce(b, archive) }), bestOf(b, 3, func() { umociOnce(b, layout) })
	}
	mb := float64(content) / 1e6
	ourRate, theirRate := mb/ours.Seconds(), mb/theirs.Seconds()
	b.ReportMetric(ourRate, "MB/s")
	b.ReportMetric(theirRate, "umoci-MB/s")
	b.ReportMetric(ourRate/theirRate, "ratio")
	fmt.Printf("\nimage import + unpack, %.0f MB of files in 4 gzip layers (%.0f MB archive), best of 3\n", mb, float64(fi.Size())/1e6)
	fmt.Printf("%-40s %10s %12s\n", "what", "time", "throughput")
	fmt.Printf("%-40s %10s %9.0f MB/s\n", "edgefaas import (oci-archive)", ours.Round(time.Millisecond), ourRate)
	fmt.Printf("%-40s %10s %9.0f MB/s\n", "umoci unpack (layout directory)", theirs.Round(time.Millisecond), theirRate)
	fmt.Printf("%-40s %10.2fx\n", "ratio (edgefaas / umoci throughput)", ourRate/theirRate)
}

func bestOf(b *testing.B, n int, fn func()) time.Duration {
	best := time.Duration(0)
	for range n {
		start := time.Now()
		fn()
		if d := time.Since(start); best == 0 || d < best {
			best = d
		}
	}
	return best
}

func importOnce(b *testing.B, archive string) {
	dir := b.TempDir()
	s, err := Open(filepath.Join(dir, "images"), Config{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.ImportArchive(context.Background(), archive); err != nil {
		b.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
}

func umociOnce(b *testing.B, layout string) {
	bundle := filepath.Join(b.TempDir(), "bundle")
	out, err := exec.Command("umoci", "unpack", "--image", layout+":latest", bundle).CombinedOutput()
	if err != nil {
		b.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	if err := os.RemoveAll(bundle); err != nil {
		b.Fatal(err)
	}
}
