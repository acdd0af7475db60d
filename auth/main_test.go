package auth

import (
	"testing"

	"github.com/majordomo-go/majordomo/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m, "majordomo/auth.") }
