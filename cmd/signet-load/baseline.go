package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"
)

// smallJSON is the bare servers' answer to a token-shaped request: a small
// constant JSON body, the cheapest answer an HTTP server can give.
var smallJSON = []byte(`{"access_token":"x","token_type":"Bearer","expires_in":900}`)

// runBaseline is the child process `signet-load baseline`: a bare net/http
// or echo server answering POST /oauth2/token with smallJSON and GET
// /.well-known/jwks.json with the given bytes and headers (those signet
// served), and nothing else.
func runBaseline(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	kind := fs.String("kind", "echo", "echo or nethttp")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	jwksFile := fs.String("jwks", "", "file with the JWKS bytes to serve")
	hdrFile := fs.String("jwks-headers", "", "file with the JWKS response headers (JSON object of lists)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	body, err := os.ReadFile(*jwksFile)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	var hdr http.Header
	b, err := os.ReadFile(*hdrFile)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	if err := json.Unmarshal(b, &hdr); err != nil {
		return fmt.Errorf("baseline: headers: %w", err)
	}
	setJWKS := func(h http.Header) {
		for k, v := range hdr {
			h[k] = v
		}
	}
	var handler http.Handler
	switch *kind {
	case "nethttp":
		mux := http.NewServeMux()
		mux.HandleFunc("POST /oauth2/token", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(smallJSON)
		})
		mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
			setJWKS(w.Header())
			_, _ = w.Write(body)
		})
		handler = mux
	case "echo":
		e := echo.New()
		e.HideBanner, e.HidePort = true, true
		e.POST("/oauth2/token", func(c echo.Context) error {
			return c.JSONBlob(http.StatusOK, smallJSON)
		})
		e.GET("/.well-known/jwks.json", func(c echo.Context) error {
			setJWKS(c.Response().Header())
			c.Response().WriteHeader(http.StatusOK)
			_, err := c.Response().Write(body)
			return err
		})
		handler = e
	default:
		return fmt.Errorf("baseline: -kind %q: want echo or nethttp", *kind)
	}
	srv := &http.Server{Addr: *addr, Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("baseline: %w", err)
	}
	return nil
}
