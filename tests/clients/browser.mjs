// How every browser test launches Chromium: Debian's own build (never a download), with
// nothing of its own phoning home, so the only requests are the ones the test makes.
export function launchOptions() {
  return {
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  };
}
