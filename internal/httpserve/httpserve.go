package httpserve

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Serve runs serve (srv.Serve or srv.ServeTLS on the caller's listener)
// until it fails or ctx is done. When serve fails first, Serve returns its
// error. When ctx is done, Serve shuts srv down gracefully, waiting at most
// timeout for in-flight requests, then closes it if that did not finish;
// it returns nil on a clean shutdown, else the shutdown error joined with
// any error serve returned other than http.ErrServerClosed.
func Serve(ctx context.Context, srv *http.Server, serve func() error, timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		_ = srv.Close()
		return err
	}
	return nil
}
