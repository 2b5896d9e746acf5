package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestNewPool(t *testing.T) {
	tests := []struct {
		cidr     string
		wantHub  string
		wantSize int
		wantErr  string
	}{
		{cidr: "10.23.0.0/16", wantHub: "10.23.0.1", wantSize: 65533},
		{cidr: "10.23.0.0/24", wantHub: "10.23.0.1", wantSize: 253},
		{cidr: "192.168.7.0/29", wantHub: "192.168.7.1", wantSize: 5},
		{cidr: "10.23.0.0/30", wantErr: "too small"},
		{cidr: "10.0.0.0/7", wantErr: "too large"},
		{cidr: "10.23.0.1/24", wantErr: "host bits set: did you mean 10.23.0.0/24"},
		{cidr: "fd00::/64", wantErr: "not IPv4"},
		{cidr: "banana", wantErr: "invalid overlay CIDR"},
	}
	for _, tt := range tests {
		t.Run(tt.cidr, func(t *testing.T) {
			p, err := NewPool(tt.cidr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Hub().String() != tt.wantHub || p.Size() != tt.wantSize {
				t.Errorf("hub %s size %d, want %s %d", p.Hub(), p.Size(), tt.wantHub, tt.wantSize)
			}
		})
	}
}

func TestAllocateUntilExhausted(t *testing.T) {
	p, _ := NewPool("10.9.0.0/29")
	a := Allocations{}
	var got []string
	for i := 0; i < p.Size(); i++ {
		ip, err := p.Allocate(a, fmt.Sprintf("n%d", i))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ip.String())
	}
	if want := "10.9.0.2 10.9.0.3 10.9.0.4 10.9.0.5 10.9.0.6"; strings.Join(got, " ") != want {
		t.Errorf("allocated %v, want %s (hub .1, network and broadcast excluded)", got, want)
	}
	if _, err := p.Allocate(a, "one-too-many"); !errors.Is(err, ErrExhausted) {
		t.Fatalf("error = %v, want ErrExhausted", err)
	}
	if ip, ok := a.Release("n2"); !ok || ip.String() != "10.9.0.4" {
		t.Fatalf("release n2 = %v %v", ip, ok)
	}
	if ip, err := p.Allocate(a, "late"); err != nil || ip.String() != "10.9.0.4" {
		t.Errorf("freed address not reused: %v %v", ip, err)
	}
	if _, err := p.Allocate(a, "late"); err == nil || !strings.Contains(err.Error(), "already holds") {
		t.Errorf("second address for one owner: %v", err)
	}
}

func TestParseFormatRoundTrip(t *testing.T) {
	a := Allocations{netip.MustParseAddr("10.23.0.10"): "b", netip.MustParseAddr("10.23.0.2"): "a"}
	text := a.Format()
	if text != "10.23.0.2 a\n10.23.0.10 b\n" {
		t.Errorf("Format = %q", text)
	}
	back, err := Parse(text)
	if err != nil || len(back) != 2 || back[netip.MustParseAddr("10.23.0.10")] != "b" {
		t.Errorf("Parse(Format) = %v, %v", back, err)
	}
	for _, bad := range []string{"10.23.0.2", "x y", "10.23.0.2 a\n10.23.0.2 b"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func BenchmarkAllocateWith5000Enrolled(b *testing.B) {
	p, _ := NewPool("10.23.0.0/16")
	a := Allocations{}
	for i := 0; i < 5000; i++ {
		if _, err := p.Allocate(a, fmt.Sprintf("node-%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	table := a.Format()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// What one join does: parse the stored table, allocate, write it back.
		parsed, err := Parse(table)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Allocate(parsed, "newcomer"); err != nil {
			b.Fatal(err)
		}
		_ = parsed.Format()
	}
}
