package vpn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// ManagementSocket is the OpenVPN hub's management socket, relative to the
// hub's directory (server.conf names it; the directory is 0700).
const ManagementSocket = "management.sock"

// Management talks to an OpenVPN hub through its management interface: it
// lists the connected clients and ends the sessions of revoked ones, which
// OpenVPN would otherwise keep until their next TLS renegotiation (an hour):
// it checks the CRL and client-config-dir only at a handshake.
type Management struct {
	conn net.Conn
	r    *bufio.Reader
}

const managementTimeout = 5 * time.Second

// DialManagement connects to the management socket at path.
func DialManagement(ctx context.Context, path string) (*Management, error) {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, managementTimeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	m := &Management{conn: conn, r: bufio.NewReader(conn)}
	// The greeting: ">INFO:OpenVPN Management Interface Version ...".
	if _, err := m.readLine(); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("reading the OpenVPN management greeting on %s: %w", path, err)
	}
	return m, nil
}

// readLine returns the next line that is not a real-time notification.
func (m *Management) readLine() (string, error) {
	for {
		if err := m.conn.SetReadDeadline(time.Now().Add(managementTimeout)); err != nil {
			return "", err
		}
		line, err := m.r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, ">") && !strings.HasPrefix(line, ">INFO:") {
			continue
		}
		return line, nil
	}
}

func (m *Management) send(command string) error {
	if err := m.conn.SetWriteDeadline(time.Now().Add(managementTimeout)); err != nil {
		return err
	}
	_, err := fmt.Fprintf(m.conn, "%s\n", command)
	return err
}

// Clients returns the common names of the connected clients.
func (m *Management) Clients() ([]string, error) {
	if err := m.send("status 3"); err != nil {
		return nil, err
	}
	var names []string
	for {
		line, err := m.readLine()
		if err != nil {
			return nil, fmt.Errorf("reading the hub's status: %w", err)
		}
		if line == "END" {
			return names, nil
		}
		if strings.HasPrefix(line, "ERROR:") {
			return nil, fmt.Errorf("the hub's status: %s", line)
		}
		if fields := strings.Split(line, "\t"); len(fields) > 1 && fields[0] == "CLIENT_LIST" {
			names = append(names, fields[1])
		}
	}
}

// Kill ends every session of the client with common name cn.
func (m *Management) Kill(cn string) error {
	if strings.ContainsAny(cn, " \t\r\n\"'\\") {
		return fmt.Errorf("refusing to send the common name %q to the management interface", cn)
	}
	if err := m.send("kill " + cn); err != nil {
		return err
	}
	line, err := m.readLine()
	if err != nil {
		return err
	}
	if strings.HasPrefix(line, "ERROR:") && strings.Contains(line, "not found") {
		return ErrNoSession
	}
	if !strings.HasPrefix(line, "SUCCESS:") {
		return fmt.Errorf("kill %s: %s", cn, line)
	}
	return nil
}

// ErrNoSession means the hub has no session with that common name (any
// more): it ended between the status and the kill.
var ErrNoSession = errors.New("no session with that common name")

// UnauthenticatedName is the common name OpenVPN lists for a client whose
// TLS handshake has not completed: no session to end.
const UnauthenticatedName = "UNDEF"

// Close ends the management session.
func (m *Management) Close() error {
	_ = m.send("quit")
	return m.conn.Close()
}

// KillCommand is the shell command that ends cn's session on a hub whose
// directory is dir, for an operator to run on the hub.
func KillCommand(dir, cn string) string {
	sock := ShellWord(strings.TrimSuffix(dir, "/") + "/" + ManagementSocket)
	if ShellWord(cn) != cn || strings.ContainsAny(cn, "%\\") {
		// Not a name kubectl stage wrote (those are DNS names): a word of
		// its own, so that pasting the command runs nothing else.
		return fmt.Sprintf("printf '%%s\\n' %s quit | socat - UNIX-CONNECT:%s", ShellWord("kill "+cn), sock)
	}
	return fmt.Sprintf("printf 'kill %s\\nquit\\n' | socat - UNIX-CONNECT:%s", cn, sock)
}

// ShellWord quotes s for a POSIX shell when it needs it, for commands
// printed for an operator to run.
func ShellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@%+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
