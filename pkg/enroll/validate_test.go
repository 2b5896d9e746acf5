package enroll

import (
	"strings"
	"testing"

	"github.com/kubectl-stage/kubectl-stage/pkg/ipam"
)

func TestValidateNames(t *testing.T) {
	tests := []struct {
		name    string
		site    bool
		value   string
		wantErr string
	}{
		{name: "site ok", site: true, value: "eu-west-1"},
		{name: "site uppercase", site: true, value: "Tokyo", wantErr: `invalid site name "Tokyo"`},
		{name: "site with dot", site: true, value: "a.b", wantErr: "invalid site name"},
		{name: "site too long", site: true, value: strings.Repeat("a", 64), wantErr: "invalid site name"},
		{name: "node ok", value: "tokyo-1.lab"},
		{name: "node underscore", value: "tokyo_1", wantErr: `invalid node name "tokyo_1"`},
		{name: "node empty", value: "", wantErr: "invalid node name"},
		{name: "node too long", value: strings.Repeat("a", 250), wantErr: "at most 248 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			validate := ValidateNodeName
			if tt.site {
				validate = ValidateSiteName
			}
			err := validate(tt.value)
			if (err != nil) != (tt.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestNormalizeEndpoint(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "vpn.example.org", want: "vpn.example.org:1194"},
		{in: "203.0.113.7:51820", want: "203.0.113.7:51820"},
		{in: "[2001:db8::1]:1194", want: "[2001:db8::1]:1194"},
		{in: "2001:db8::1", want: "[2001:db8::1]:1194"},
		{in: "", wantErr: "is required"},
		{in: "host:99999", wantErr: "port must be 1-65535"},
		{in: "bad_host!:1194", wantErr: "neither an IP address nor a DNS name"},
		{in: "198.18.0.1:+1194", wantErr: "port must be 1-65535"},
		{in: "198.18.0.1:01194", want: "198.18.0.1:1194"},
		{in: "10.23.0.1:6443$(touch PWNED)", wantErr: "port must be 1-65535"},
		{in: "$(touch PWNED)", wantErr: "neither an IP address nor a DNS name"},
		{in: "a\nscript-security 2", wantErr: "neither an IP address nor a DNS name"},
		{in: "[fe80::1%eth0]:1194", wantErr: "zone"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := NormalizeEndpoint("--hub-endpoint", tt.in, 1194)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("= %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestCheckOverlap(t *testing.T) {
	pool, _ := ipam.NewPool("10.23.0.0/16")
	tests := []struct {
		cidr    string
		wantErr bool
	}{
		{"", false},
		{"10.244.0.0/16", false},
		{"10.0.0.0/8", true},
		{"10.244.0.0/16,10.23.128.0/20", true},
		{"fd00::/48", false},
		{"nonsense", true},
	}
	for _, tt := range tests {
		if err := CheckOverlap(pool, "pod", tt.cidr); (err != nil) != tt.wantErr {
			t.Errorf("CheckOverlap(%q) = %v, wantErr %v", tt.cidr, err, tt.wantErr)
		}
	}
}
