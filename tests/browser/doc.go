// Package browser checks the agent's live view (/ui/ on the admin listener,
// docs/live.md) as a user sees it: a real agent binary with real producer
// processes, and the page in a headless Chromium driven over the DevTools
// protocol (chromedp). The tests read the DOM and the page's test hook
// (window.agaobsLive) and compare them with the agent's own APIs and
// /metrics; they also measure the event → pixel delay and the first-load
// bytes, and save a screenshot (.e2e/live.png; -update copies it to
// docs/live.png). Without Chromium they skip, or fail under
// AGAOBS_TEST_REQUIRE_BPF=1. It has no code of its own; the checks are its
// tests.
package browser
