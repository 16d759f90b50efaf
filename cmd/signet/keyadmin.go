package main

import (
	"context"
	"errors"
	"fmt"

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
		return fmt.Errorf("%w: %w", authority.ErrKeyConflict, err)
	}
	return err
}

func (a keyAdmin) Revoke(ctx context.Context, kid string) error { return a.m.Revoke(ctx, kid) }
