package vpn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
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

// Client is a session the hub holds.
type Client struct {
	// CommonName is the client certificate's CN: the node's name.
	CommonName string
	// ID is the hub's client ID of the session (client-kill takes it).
	ID string
}

// Clients returns the connected clients, read from `status 3`, whose
// CLIENT_LIST header names the columns.
func (m *Management) Clients() ([]Client, error) {
	if err := m.send("status 3"); err != nil {
		return nil, err
	}
	var clients []Client
	nameCol, idCol := -1, -1
	for {
		line, err := m.readLine()
		if err != nil {
			return nil, fmt.Errorf("reading the hub's status: %w", err)
		}
		if line == "END" {
			return clients, nil
		}
		if strings.HasPrefix(line, "ERROR:") {
			return nil, fmt.Errorf("the hub's status: %s", line)
		}
		fields := strings.Split(line, "\t")
		if len(fields) > 2 && fields[0] == "HEADER" && fields[1] == "CLIENT_LIST" {
			// The header has one more leading field than the rows.
			nameCol, idCol = slices.Index(fields, "Common Name")-1, slices.Index(fields, "Client ID")-1
			continue
		}
		if fields[0] != "CLIENT_LIST" {
			continue
		}
		if nameCol < 1 || idCol < 1 || len(fields) <= max(nameCol, idCol) {
			return nil, fmt.Errorf("the hub's status lists clients without a Common Name and Client ID column (OpenVPN 2.4 or later has them): %q", line)
		}
		clients = append(clients, Client{CommonName: fields[nameCol], ID: fields[idCol]})
	}
}

// Kill ends the session c. client-kill (unlike kill by common name) tells
// the client with a RESTART message, so it reconnects at once, is refused,
// and its log says so, instead of waiting a minute for its keepalive.
func (m *Management) Kill(c Client) error {
	if _, err := strconv.ParseUint(c.ID, 10, 64); err != nil {
		return fmt.Errorf("refusing to send the client ID %q of %q to the management interface", c.ID, c.CommonName)
	}
	if err := m.send("client-kill " + c.ID); err != nil {
		return err
	}
	line, err := m.readLine()
	if err != nil {
		return err
	}
	if strings.HasPrefix(line, "ERROR:") && strings.Contains(line, "client-kill command failed") {
		return ErrNoSession
	}
	if !strings.HasPrefix(line, "SUCCESS:") {
		return fmt.Errorf("client-kill %s (%s): %s", c.ID, c.CommonName, line)
	}
	return nil
}

// ErrNoSession means the hub has no such session (any more): it ended
// between the status and the kill.
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
