package config

import "strings"

// suggest returns the candidate nearest to name, or "" if none is close
// enough to be a plausible typo. Case, '-' and '_' are ignored, so that
// max_queue finds max-queue and MDBROKER_MAXQUEUE finds MDBROKER_MAX_QUEUE.
func suggest(name string, candidates []string) string {
	norm := func(s string) string {
		return strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(s))
	}
	n := norm(name)
	best, bestDist := "", -1
	for _, c := range candidates {
		d := distance(n, norm(c))
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	limit := max(2, len(n)/3)
	if bestDist < 0 || bestDist > limit {
		return ""
	}
	return best
}

// distance is the Levenshtein edit distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
