// Command signet-demo-api is the smallest resource server that trusts
// Signet: an echo API whose routes are protected by the jwks middleware.
// See docs/demo.md for the walk-through.
//
//	go run ./cmd/signet serve --dev
//	go run ./cmd/signet-demo-api --issuer http://localhost:8080
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/jwks"
	"github.com/signet-auth/signet/jwks/echojwt"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "signet-demo-api:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("signet-demo-api", flag.ContinueOnError)
	fs.SetOutput(stderr)
	issuer := fs.String("issuer", envOr("SIGNET_ISSUER", "http://localhost:8080"), "issuer URL of signet (env SIGNET_ISSUER)")
	audience := fs.String("audience", "demo-api", "the audience this API accepts")
	scope := fs.String("scope", "demo:read", "the scope GET /hello requires")
	addr := fs.String("addr", "127.0.0.1:9090", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))

	// This is all a service needs: a verifier for the issuer and audience,
	// and the middleware on the routes it protects.
	v, err := jwks.NewVerifier(ctx, *issuer, jwks.WithAudience(*audience), jwks.WithLogger(log))
	if err != nil {
		return err
	}
	defer v.Close()

	srv := &http.Server{Addr: *addr, Handler: newAPI(v, *scope), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("demo API listening", "addr", *addr, "issuer", *issuer, "audience", *audience, "scope", *scope)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newAPI is the demo's routes: GET /hello needs a valid token with scope;
// GET /healthz needs nothing.
func newAPI(v *jwks.Verifier, scope string) http.Handler {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/hello", hello, echojwt.Middleware(v, jwks.RequireScopes(scope)))
	return e
}

func hello(c echo.Context) error {
	claims, _ := jwks.ClaimsFromContext(c.Request().Context())
	return c.JSON(http.StatusOK, map[string]any{
		"hello":     claims.Subject,
		"client_id": claims.ClientID,
		"scopes":    claims.Scopes(),
		"expires":   claims.Expiry.UTC().Format(time.RFC3339),
	})
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
