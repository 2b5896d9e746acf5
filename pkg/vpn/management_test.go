package vpn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeHub answers the management commands as OpenVPN 2.6 does, with a
// real-time notification in between, and records the kills.
func fakeHub(t *testing.T, clients []string) (path string, killed chan string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), ManagementSocket)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	killed = make(chan string, 10)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer func() { _ = conn.Close() }()
		w := func(s string) { _, _ = conn.Write([]byte(s + "\r\n")) }
		w(">INFO:OpenVPN Management Interface Version 5 -- type 'help' for more info")
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			cmd := sc.Text()
			switch {
			case cmd == "status 3":
				w("TITLE\tOpenVPN 2.6.14")
				w(">BYTECOUNT_CLI:1,2,3")
				w("HEADER\tCLIENT_LIST\tCommon Name\tReal Address\tVirtual Address\tVirtual IPv6 Address\tBytes Received\tBytes Sent\tConnected Since\tConnected Since (time_t)\tUsername\tClient ID\tPeer ID\tData Channel Cipher")
				for i, c := range clients {
					w(fmt.Sprintf("CLIENT_LIST\t%s\t198.18.1.2:1194\t10.23.0.2\t\t100\t200\t2026-11-25 07:00:00\t1795590000\tUNDEF\t%d\t%d\tAES-256-GCM", c, 7+i, i))
				}
				w("ROUTING_TABLE\t10.23.0.2\ta-1\t198.18.1.2:1194")
				w("END")
			case cmd == "client-kill 99":
				w("ERROR: client-kill command failed")
			case strings.HasPrefix(cmd, "client-kill "):
				killed <- strings.TrimPrefix(cmd, "client-kill ")
				w("SUCCESS: client-kill command succeeded")
			case cmd == "quit":
				return
			default:
				w("ERROR: unknown command")
			}
		}
	}()
	return path, killed
}

func TestManagementListsAndKills(t *testing.T) {
	path, killed := fakeHub(t, []string{"a-1", "b-1"})
	m, err := DialManagement(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Close() }()
	clients, err := m.Clients()
	want := []Client{{CommonName: "a-1", ID: "7"}, {CommonName: "b-1", ID: "8"}}
	if err != nil || !reflect.DeepEqual(clients, want) {
		t.Fatalf("Clients() = %v, %v; want %v", clients, err, want)
	}
	if err := m.Kill(clients[1]); err != nil {
		t.Fatal(err)
	}
	if got := <-killed; got != "8" {
		t.Errorf("client-kill %q, want 8 (b-1's client ID)", got)
	}
	if err := m.Kill(Client{CommonName: "gone", ID: "99"}); !errors.Is(err, ErrNoSession) {
		t.Errorf("kill of a session that ended: %v, want ErrNoSession", err)
	}
	if err := m.Kill(Client{CommonName: "b-1", ID: "8\nsignal SIGTERM"}); err == nil {
		t.Error("a client ID with a newline went to the management interface")
	}
}

func TestKillCommand(t *testing.T) {
	if got := KillCommand("/etc/openvpn/hub/", "b-1"); got != `printf 'kill b-1\nquit\n' | socat - UNIX-CONNECT:/etc/openvpn/hub/management.sock` {
		t.Errorf("KillCommand = %s", got)
	}
	for _, cn := range []string{"x'$(echo INJECTED)'", "a%sb", "a\nkill all"} {
		out, err := exec.Command("bash", "-c", "printf() { builtin printf \"$@\"; }; eval \"${1%% | socat*}\"", "_", KillCommand("/h", cn)).Output()
		if err != nil || string(out) != "kill "+cn+"\nquit\n" {
			t.Errorf("KillCommand(%q) = %s: prints %q (%v)", cn, KillCommand("/h", cn), out, err)
		}
	}
	if got := KillCommand("/tmp/my hub", "b-1"); !strings.HasSuffix(got, `UNIX-CONNECT:'/tmp/my hub/management.sock'`) {
		t.Errorf("KillCommand = %s", got)
	}
}
