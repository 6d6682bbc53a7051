// Server-sent events over fetch(): unlike EventSource, fetch can send the Authorization header,
// so the API key never lands in a URL. Parses the WHATWG event-stream format and resumes a
// dropped stream with Last-Event-ID, so each event is delivered once, in order.

/** Incremental event-stream parser: push() text chunks, get {id, event, data} messages. */
export class SseParser {
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.buffer = "";
    this.data = [];
    this.event = "";
    this.id = null;
  }

  push(text) {
    this.buffer += text;
    const lines = this.buffer.split(/\r\n|\r|\n/);
    this.buffer = lines.pop(); // the last piece may be an incomplete line
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return undefined; // comment: a heartbeat
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "data") this.data.push(value);
    else if (name === "event") this.event = value;
    else if (name === "id" && !value.includes("\0")) this.id = value;
    return undefined;
  }

  dispatch() {
    const data = this.data;
    const event = this.event || "message";
    this.data = [];
    this.event = "";
    if (data.length) this.onMessage({ id: this.id, event, data: data.join("\n") });
  }
}

/** Error for a refused stream (4xx): reconnecting would not help. */
export class StreamRefused extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function readOnce(url, { headers, signal, lastEventId, onMessage, onOpen }) {
  const h = { Accept: "text/event-stream", ...headers };
  if (lastEventId) h["Last-Event-ID"] = String(lastEventId);
  const response = await fetch(url, { headers: h, signal, cache: "no-store" });
  if (response.status >= 400 && response.status < 500 && response.status !== 429) {
    let message = `${response.status}`;
    try {
      message = (await response.json()).error.message || message;
    } catch { /* not JSON */ }
    throw new StreamRefused(response.status, message);
  }
  if (!response.ok || !response.body) throw new Error(`stream answered ${response.status}`);
  onOpen?.();
  const parser = new SseParser(onMessage);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    parser.push(value);
  }
}

const pause = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });

/**
 * Follow one job's events after seq `after` until `isFinal(event)` or `signal` aborts. Each
 * parsed JSON event goes to `onEvent` once (seq-deduplicated); `onState` hears "live",
 * "reconnecting" and "closed". A `gap` (events trimmed from the capped stream) hands the job
 * with its whole history to `onGap`, then its missed events go to `onEvent` like the others.
 */
export async function followEvents(url, { headers, signal, onEvent, onState, isFinal, after = 0,
  onGap = () => {} }) {
  let last = after;
  let failures = 0;
  let finished = false;
  const deliver = (event) => {
    if (event.seq <= last) return;
    last = event.seq;
    failures = 0;
    onEvent(event);
    if (isFinal(event)) finished = true;
  };
  const onMessage = (message) => {
    if (message.event === "message") return;
    const data = JSON.parse(message.data);
    if (message.event === "gap") {
      onGap(data);
      data.job.history.forEach(deliver);
      if (["completed", "failed", "cancelled"].includes(data.job.status)) finished = true;
      return;
    }
    deliver(data);
  };
  while (!finished && !signal.aborted) {
    try {
      await readOnce(url, { headers: headers(), signal, lastEventId: last, onMessage,
        onOpen: () => onState("live") });
    } catch (error) {
      if (signal.aborted) break;
      if (error instanceof StreamRefused) { onState("closed", error); throw error; }
    }
    if (finished || signal.aborted) break;
    onState("reconnecting");
    await pause(Math.min(500 * 2 ** failures, 8000), signal);
    failures += 1;
  }
  onState("closed");
}
