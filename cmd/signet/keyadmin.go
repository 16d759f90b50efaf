package main

import (
	"context"
	"errors"

	"github.com/signet-auth/signet/authority"
	"github.com/signet-auth/signet/keys"
)

// keyAdmin adapts *keys.Manager to authority.KeyAdmin, so that authority
// never imports keys.
type keyAdmin struct{ m *keys.Manager }

func (a keyAdmin) Keys(ctx context.Context) ([]authority.KeyInfo, error) {
	infos, err := a.m.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]authority.KeyInfo, len(infos))
	for i, k := range infos {
		out[i] = authority.KeyInfo{
			KID: k.KID, Alg: k.Alg, State: string(k.State),
			CreatedAt: k.CreatedAt, ActivatedAt: k.ActivatedAt, RetiredAt: k.RetiredAt,
			RevokedAt: k.RevokedAt, ExpiresAt: k.ExpiresAt,
		}
	}
	return out, nil
}

func (a keyAdmin) Rotate(ctx context.Context, force bool) error {
	err := a.m.Rotate(ctx, force)
	if errors.Is(err, keys.ErrPendingTooYoung) {
		return keyConflict{err}
	}
	return err
}

// keyConflict is a refused rotation: an authority.ErrKeyConflict (409)
// whose text is the reason alone, without the sentinel's, since the admin
// API shows it as the error_description.
type keyConflict struct{ err error }

func (e keyConflict) Error() string {
	return e.err.Error() + " (force=true activates it anyway)"
}
func (e keyConflict) Unwrap() error        { return e.err }
func (e keyConflict) Is(target error) bool { return target == authority.ErrKeyConflict }

func (a keyAdmin) Revoke(ctx context.Context, kid string) error { return a.m.Revoke(ctx, kid) }
