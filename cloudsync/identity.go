// Package cloudsync is the agent's side of the cloud link: the device
// identity (an ed25519 key made on the device), enrolment with a one-time
// token, and the Link, which dials the controller, proves the key, reports
// inventory and health and uploads activation records from the metering
// ledger, acknowledging them only once the controller holds them.
//
// The wire protocol is in cloudsync/proto, which the controller shares. Desired
// state (deploying what the controller asks for) is a later step.
package cloudsync

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgefaas/edgefaas/cloudsync/proto"
	"github.com/edgefaas/edgefaas/errdefs"
)

// Files in the identity directory (StateDir/cloud).
const (
	keyFile    = "device.key"  // the ed25519 seed, hex, mode 0600
	deviceFile = "device.json" // what enrolment returned
)

// Identity is an enrolled device: its key and the id the controller knows
// it by.
type Identity struct {
	DeviceID   string             `json:"device_id"`
	Controller string             `json:"controller"`
	Labels     map[string]string  `json:"labels,omitempty"`
	EnrolledAt time.Time          `json:"enrolled_at"`
	Key        ed25519.PrivateKey `json:"-"`
}

// LoadIdentity reads the identity in dir; ErrNotFound when the device was
// never enrolled.
func LoadIdentity(dir string) (Identity, error) {
	var id Identity
	b, err := os.ReadFile(filepath.Join(dir, deviceFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Identity{}, fmt.Errorf("cloud identity in %s: not enrolled: %w", dir, errdefs.ErrNotFound)
	}
	if err != nil {
		return Identity{}, fmt.Errorf("cloud identity: %w", err)
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return Identity{}, fmt.Errorf("cloud identity %s: %v: %w", deviceFile, err, errdefs.ErrInvalid)
	}
	if id.Key, err = loadKey(dir); err != nil {
		return Identity{}, err
	}
	if got := proto.DeviceID(id.Key.Public().(ed25519.PublicKey)); got != id.DeviceID {
		return Identity{}, fmt.Errorf("cloud identity: key is for %s, %s names %s: %w", got, deviceFile, id.DeviceID, errdefs.ErrInvalid)
	}
	return id, nil
}

func loadKey(dir string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("device key %s: not a hex ed25519 seed: %w", keyFile, errdefs.ErrInvalid)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// loadOrCreateKey returns the device key in dir, making one (mode 0600)
// when there is none. The key is on disk before it is sent anywhere, so
// that an enrolment the controller accepted is never lost with it.
func loadOrCreateKey(dir string) (ed25519.PrivateKey, error) {
	k, err := loadKey(dir)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	_, k, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(dir, keyFile), []byte(hex.EncodeToString(k.Seed())+"\n")); err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	return k, nil
}

// Enroll makes this device's key (or reuses one made by an enrolment that
// failed) and spends token at the controller, whose base URL is
// controller. tlsConf is for an https controller whose certificate the
// system's roots do not vouch for (nil: the system's). A token unknown or
// already used is ErrConflict; a controller that cannot be reached is
// ErrUnavailable; a certificate that does not verify is ErrInvalid.
func Enroll(ctx context.Context, dir, controller, token string, tlsConf *tls.Config) (Identity, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Identity{}, err
	}
	base, err := url.Parse(controller)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return Identity{}, fmt.Errorf("controller %q: want http(s)://host[:port]: %w", controller, errdefs.ErrInvalid)
	}
	key, err := loadOrCreateKey(dir)
	if err != nil {
		return Identity{}, err
	}
	host, _ := os.Hostname()
	body, err := json.Marshal(proto.EnrollRequest{Token: token, PublicKey: key.Public().(ed25519.PublicKey), Hostname: host})
	if err != nil {
		return Identity{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(controller, "/")+proto.EnrollPath, bytes.NewReader(body))
	if err != nil {
		return Identity{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	client := http.DefaultClient
	if tlsConf != nil {
		client = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: tlsConf}}
		defer client.CloseIdleConnections()
	}
	resp, err := client.Do(req)
	var verr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &verr):
		return Identity{}, fmt.Errorf("enrol at %s: %v (--cloud-ca names the CA of a private certificate): %w", controller, err, errdefs.ErrInvalid)
	case err != nil:
		return Identity{}, fmt.Errorf("enrol at %s: %v: %w", controller, err, errdefs.ErrUnavailable)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusForbidden:
		return Identity{}, fmt.Errorf("enrol at %s: the controller refused the token (unknown or already used): %w", controller, errdefs.ErrConflict)
	case resp.StatusCode != http.StatusOK:
		return Identity{}, fmt.Errorf("enrol at %s: %s: %s", controller, resp.Status, strings.TrimSpace(string(b)))
	}
	var er proto.EnrollResponse
	if err := json.Unmarshal(b, &er); err != nil {
		return Identity{}, fmt.Errorf("enrol at %s: answer: %w", controller, err)
	}
	id := Identity{DeviceID: er.DeviceID, Controller: controller, Labels: er.Labels, EnrolledAt: time.Now().UTC(), Key: key}
	if want := proto.DeviceID(key.Public().(ed25519.PublicKey)); er.DeviceID != want {
		return Identity{}, fmt.Errorf("enrol at %s: controller named the device %q, its key makes %q: %w", controller, er.DeviceID, want, errdefs.ErrInvalid)
	}
	meta, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return Identity{}, err
	}
	if err := writeFileAtomic(filepath.Join(dir, deviceFile), append(meta, '\n')); err != nil {
		return Identity{}, fmt.Errorf("enrolled as %s but could not record it: %w", id.DeviceID, err)
	}
	return id, nil
}

// writeFileAtomic writes a 0600 file through a synced temporary file and a
// rename, so that a crash leaves the old file or the new one.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
