package login

import (
	"log/slog"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/signet-auth/signet/authority/refusal"
)

// retryAfter is the Retry-After of a page refused because the store did
// not answer, in seconds: as the JSON endpoints answer (authority.ServerError).
const retryAfter = 1

// serverError answers a failure on Signet's side. A store that did not
// answer in time, lost its leader or kept conflicting (refusal.StoreUnavailable,
// the classification the JSON endpoints use) passes: the page answers 503
// with Retry-After and asks the user to try again in a moment, and the
// outage is one WARN line per episode (package refusal), not an internal
// error per request. Anything else is a 500 logged as an error.
func (h *Handler) serverError(c echo.Context, err error) error {
	ctx := c.Request().Context()
	if refusal.StoreUnavailable(err) {
		h.refusals.Note(ctx, h.log, refusal.Condition(err), http.StatusServiceUnavailable, err.Error(),
			c.Response().Header().Get(echo.HeaderXRequestID), h.cfg.Now())
		c.Response().Header().Set(echo.HeaderRetryAfter, strconv.Itoa(retryAfter))
		return h.errorPage(c, http.StatusServiceUnavailable, "Try again in a moment",
			"The sign-in service is briefly unavailable. Wait a moment, then reload this page or start again from the application.", "")
	}
	h.log.LogAttrs(ctx, slog.LevelError, "login", slog.String("err", err.Error()))
	return h.errorPage(c, http.StatusInternalServerError, "Something went wrong", "The server could not complete this request. Try again in a moment.", "")
}
