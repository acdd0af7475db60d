package ops

import "embed"

// webFiles is the status page: web/index.html at /, the rest under
// /static/. No CDN, nothing fetched from elsewhere: it works offline.
//
//go:embed web/index.html web/static
var webFiles embed.FS
