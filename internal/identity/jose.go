package identity

import (
	_ "github.com/go-jose/go-jose/v4" // JWT and JWKS verification
)
