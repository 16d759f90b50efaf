package datadir

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// AdminCredentialsFile is where the first start on an empty store writes
// the first admin client's credentials, in the data directory.
const AdminCredentialsFile = "admin-credentials.json"

// AdminCredentials is that file: the shape `signet init` prints.
type AdminCredentials struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// WriteAdminCredentials writes the file 0600, replacing one left by an
// earlier store.
func WriteAdminCredentials(path string, cs AdminCredentials) error {
	b, err := json.MarshalIndent(cs, "", "  ")
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("admin credentials %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("admin credentials %s: %w", path, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("admin credentials %s: %w", path, err)
	}
	return f.Close()
}

// ReadAdminCredentials reads the file the first start wrote into dataDir,
// refusing one other users can read, as for the KEK.
func ReadAdminCredentials(dataDir string) (AdminCredentials, string, error) {
	path := filepath.Join(dataDir, AdminCredentialsFile)
	info, err := os.Stat(path)
	if err != nil {
		return AdminCredentials{}, path, err
	}
	if info.Mode().Perm()&0o077 != 0 {
		return AdminCredentials{}, path, fmt.Errorf("%s: mode %v lets other users read it: run chmod 600 %s", path, info.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return AdminCredentials{}, path, err
	}
	var cs AdminCredentials
	if err := json.Unmarshal(b, &cs); err != nil || cs.ClientID == "" || cs.ClientSecret == "" {
		return AdminCredentials{}, path, fmt.Errorf("%s: not the credentials signet serve writes (client_id, client_secret)", path)
	}
	return cs, path, nil
}
