package httpfront

import "github.com/fasthttp/router"

func (s *Server) responseRoutes(r *router.Router) {}
