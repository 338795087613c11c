// imgdup admin page: clusters as thumbnail grids, per-pair evidence, moderator verdicts.
// Plain DOM; every value from the API goes through textContent or a checked attribute.
// Logging in, the credential on every fetch and the thumbnails: session.js (loaded first).
"use strict";

const PAGE_SIZE = 20;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-")) node.setAttribute(key, String(value));
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fmt(value, digits) {
  if (value === null || value === undefined) return "–";
  return Number(value).toFixed(digits);
}

function pct(ratio) {
  return `${(100 * ratio).toFixed(1)}%`;
}

function day(iso) {
  return iso ? String(iso).slice(0, 10) : "";
}

function when(iso) {
  return iso ? String(iso).slice(0, 16).replace("T", " ") : "";
}

let toastTimer = null;
function toast(message, isError) {
  const box = $("toast");
  box.textContent = message;
  box.className = isError ? "toast error" : "toast";
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, isError ? 6000 : 2500);
}

// ------------------------------------------------------------------------------- filters & URL

function filtersFromForm() {
  return {
    ad_id: $("f-ad").value.trim(),
    category: $("f-category").value.trim(),
    source: $("f-source").value.trim(),
    since: $("f-since").value,
    until: $("f-until").value,
    include_rejected: $("f-rejected").checked,
  };
}

function filtersToForm(params) {
  $("f-ad").value = params.get("ad_id") || "";
  $("f-category").value = params.get("category") || "";
  $("f-source").value = params.get("source") || "";
  $("f-since").value = params.get("since") || "";
  $("f-until").value = params.get("until") || "";
  $("f-rejected").checked = params.get("include_rejected") !== "false";
  state.offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
}

function queryFor(filters, offset) {
  const params = new URLSearchParams();
  for (const key of ["ad_id", "category", "source", "since", "until"]) {
    if (filters[key]) params.set(key, filters[key]);
  }
  if (!filters.include_rejected) params.set("include_rejected", "false");
  if (offset) params.set("offset", String(offset));
  return params;
}

// ------------------------------------------------------------------------------- statistics

function ratioBar(ratio) {
  const fill = el("span");
  fill.style.width = `${Math.round(100 * Math.min(1, ratio))}%`;
  return el("span", { class: "ratio", title: pct(ratio) }, fill);
}

function sparkline(daily, since, days) {
  const byDay = new Map(daily.map((b) => [b.day, b]));
  const spark = el("span", { class: "spark", title: "daily ratio of images in clusters" });
  const start = new Date(`${since}T00:00:00Z`);
  for (let i = 0; i < days; i += 1) {
    const key = new Date(start.getTime() + i * 86400000).toISOString().slice(0, 10);
    const bucket = byDay.get(key);
    const bar = el("span", {
      class: bucket ? "" : "empty",
      title: bucket ? `${key}: ${bucket.images_in_clusters}/${bucket.images_indexed}` : `${key}: no images`,
    });
    bar.style.height = bucket ? `${Math.max(6, Math.round(100 * bucket.ratio))}%` : "6%";
    spark.append(bar);
  }
  return spark;
}

function groupTable(title, rows, label, stats) {
  const days = Math.min(stats.days, 60);
  const since = new Date(Date.parse(`${stats.since}T00:00:00Z`) + (stats.days - days) * 86400000)
    .toISOString().slice(0, 10);
  return el("div", {},
    el("h3", { text: title }),
    el("table", {},
      el("thead", {}, el("tr", {},
        el("th", { text: label }), el("th", { class: "num", text: "images" }),
        el("th", { class: "num", text: "clustered" }), el("th", { text: "ratio" }),
        el("th", { text: `last ${days} days` }))),
      el("tbody", {}, rows.map((row) => el("tr", {},
        el("td", { text: row.key }),
        el("td", { class: "num", text: row.images_indexed }),
        el("td", { class: "num", text: row.images_in_clusters }),
        el("td", {}, ratioBar(row.ratio), ` ${pct(row.ratio)}`),
        el("td", {}, sparkline(row.daily, since, days)))))));
}

function topTable(title, head, rows) {
  return el("div", {},
    el("h3", { text: title }),
    rows.length === 0 ? el("p", { class: "muted", text: "none" }) :
      el("table", {},
        el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { class: i ? "num" : "", text: h })))),
        el("tbody", {}, rows.map((cells) => el("tr", {},
          cells.map((c, i) => el("td", { class: i ? "num" : "mono", text: c })))))));
}

async function loadStats() {
  const body = $("stats-body");
  try {
    const stats = await getJSON("/api/v1/stats?days=30");
    if (!state.caller) return;
    $("stats-window").textContent = `· last ${stats.days} days (since ${stats.since})`;
    body.replaceChildren(
      el("div", { class: "totals" },
        el("h3", { text: "Overall" }),
        el("div", {}, el("strong", { text: pct(stats.totals.ratio) }), " of images are in a duplicate cluster"),
        el("div", { class: "muted", text:
          `${stats.totals.images_in_clusters} of ${stats.totals.images_indexed} images indexed · ` +
          `${stats.totals.clusters} clusters` })),
      groupTable("By source", stats.by_source.map((s) => ({ ...s, key: s.source })), "source", stats),
      groupTable("By category", stats.by_category.map((s) => ({ ...s, key: s.category ?? "(none)" })),
        "category", stats),
      topTable("Top image hosts", ["host", "images", "clusters", "ads"],
        stats.top_image_domains.map((d) => [d.domain, d.images, d.clusters, d.ads])),
      topTable("Top sellers in clusters", ["seller", "clusters", "images", "copies"],
        stats.top_sellers.map((s) => [s.seller_id, s.clusters, s.images, s.copies])));
    $("categories").replaceChildren(...stats.by_category.filter((c) => c.category !== null)
      .map((c) => el("option", { value: c.category })));
    $("sources").replaceChildren(...stats.by_source.map((s) => el("option", { value: s.source })));
  } catch (error) {
    if (error instanceof AuthError) return;
    body.replaceChildren(el("p", { class: "muted", text: `statistics unavailable: ${error.message}` }));
  }
}

// ------------------------------------------------------------------------------- clusters

function imageCard(image, searchedAd) {
  const classes = ["thumb"];
  if (image.detached) classes.push("detached");
  if (searchedAd && String(image.ad_id) === searchedAd) classes.push("match");
  const link = el("a", { target: "_blank", rel: "noopener noreferrer" });
  link.append(thumbnail(image.image_id, { alt: `image of ad ${image.ad_id}`, title: image.url, decoding: "async" }, link));
  const adLink = el("a", { href: `?ad_id=${encodeURIComponent(image.ad_id)}`, text: `ad ${image.ad_id}` });
  adLink.addEventListener("click", (event) => {
    event.preventDefault();
    searchAd(String(image.ad_id));
  });
  return el("figure", { class: classes.join(" "), "data-image-id": image.image_id, "data-ad-id": image.ad_id },
    link,
    el("figcaption", {},
      adLink, ` · ${image.source}`, image.category ? ` · ${image.category}` : "",
      image.detached ? el("span", { class: "flag", text: "detached" }) : null,
      el("span", { class: "seller", text: `${image.seller_id || "no seller"} · ${day(image.first_seen_at)}` })));
}

function verdictCell(pair) {
  const verdict = pair.moderator_verdict;
  if (!verdict) return el("td", { class: "verdict muted", text: "pending" });
  const label = verdict.verdict === "confirmed" ? "confirmed" : "not a duplicate";
  return el("td", { class: "verdict", title: verdict.note || "" },
    el("span", { class: `pill ${verdict.verdict === "confirmed" ? "ok" : "bad"}`, text: label }),
    el("div", { class: "muted", text: `${verdict.moderator} · ${when(verdict.decided_at)}` }));
}

function pairRow(pair, imagesById) {
  const ev = pair.evidence;
  const verdict = pair.moderator_verdict ? pair.moderator_verdict.verdict : null;
  const thumbs = [pair.image_a, pair.image_b].map((id) => {
    const image = imagesById.get(id);
    return thumbnail(id, { alt: image ? `ad ${image.ad_id}` : "" });
  });
  // A viewer sees the evidence and the verdicts but records none (the API would answer 403).
  const readOnly = canModerate() ? null : "read-only: your role may not record verdicts";
  const confirm = el("button", {
    type: "button", class: "confirm", text: "Confirm", "data-verdict": "confirmed",
    disabled: verdict === "confirmed" || Boolean(readOnly), title: readOnly,
  });
  const reject = el("button", {
    type: "button", class: "reject", text: "Not a duplicate", "data-verdict": "not_duplicate",
    disabled: verdict === "not_duplicate" || Boolean(readOnly), title: readOnly,
  });
  confirm.addEventListener("click", () => sendVerdict(pair.pair_id, "confirmed", [confirm, reject], row));
  reject.addEventListener("click", () => sendVerdict(pair.pair_id, "not_duplicate", [confirm, reject], row));
  const why = el("button", { type: "button", class: "why secondary", text: "Why?",
    title: "the matched keypoints, the compared part and the aligned difference" });
  const row = el("tr", {
    class: verdict === "not_duplicate" ? "rejected" : verdict === "confirmed" ? "confirmed" : "",
    "data-pair-id": pair.pair_id,
  },
    el("td", { class: "pair-ads" }, el("span", { class: "mini" }, thumbs), `ad ${pair.ad_a} ↔ ad ${pair.ad_b}`),
    el("td", { class: "num", text: fmt(pair.confidence, 3) }),
    el("td", { class: "num" }, ev.phash_distance ?? "–", ev.phash_mirrored ? el("span", { class: "flag", text: "mirror", title: "matched the mirrored image" }) : null),
    el("td", { class: "num", text: fmt(ev.embedding_cosine, 3) }),
    el("td", { class: "num" }, ev.sift_inliers ?? "–", ev.sift_mirrored ? el("span", { class: "flag", text: "mirror", title: "matched the mirrored image" }) : null),
    el("td", { class: "num", text: fmt(ev.ssim, 3) }),
    el("td", {},
      ev.exact ? el("span", { class: "flag", text: "exact copy" }) : null,
      ev.compared && ev.compared.includes("photo")
        ? el("span", { class: "flag", text: "framed photo", title: `compared ${ev.compared} (the photo inside a screenshot or border)` })
        : null),
    verdictCell(pair),
    el("td", { class: "actions" }, why, " ", confirm, " ", reject));
  why.addEventListener("click", () => toggleWhy(row, pair, why));
  return row;
}

// ------------------------------------------------------------------------------- why: the alignment

const SVG_NS = "http://www.w3.org/2000/svg";
const WHY_HEIGHT = 260;

function svgEl(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.setAttribute("class", value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, String(value));
  }
  node.append(...children);
  return node;
}

// An authenticated image fetched once per render (revoked with the thumbnails).
function blobUrl(key, url) {
  if (!state.thumbs.has(key)) {
    state.thumbs.set(key, fetch(url, { headers: authHeaders({ accept: "image/jpeg" }) }).then(async (response) => {
      if (!response.ok) throw new Error(`${url}: ${response.status}`);
      return URL.createObjectURL(await response.blob());
    }));
  }
  return state.thumbs.get(key);
}

function naturalSize(url) {
  return new Promise((resolve, reject) => {
    const probe = new Image();
    probe.onload = () => resolve({ w: probe.naturalWidth, h: probe.naturalHeight });
    probe.onerror = () => reject(new Error("image did not load"));
    probe.src = url;
  });
}

// The two stored copies side by side, a line per matched keypoint (the verifier's RANSAC
// inliers, recomputed by the API from the stored features), the compared part of a framed
// picture outlined, and the aligned overlay and difference image under them.
async function fillWhy(view, pair) {
  const ex = await getJSON(`/api/v1/pairs/${encodeURIComponent(pair.pair_id)}/explanation`);
  const [urlA, urlB] = await Promise.all([thumbnailUrl(ex.image_a), thumbnailUrl(ex.image_b)]);
  const [a, b] = await Promise.all([naturalSize(urlA), naturalSize(urlB)]);
  const wa = Math.round((a.w * WHY_HEIGHT) / a.h);
  const wb = Math.round((b.w * WHY_HEIGHT) / b.h);
  const gap = 28;
  const width = wa + gap + wb;
  const svg = svgEl("svg", { class: "matches", viewBox: `0 0 ${width} ${WHY_HEIGHT}`, width, height: WHY_HEIGHT });
  svg.append(
    svgEl("image", { href: urlA, x: 0, y: 0, width: wa, height: WHY_HEIGHT, preserveAspectRatio: "none" }),
    svgEl("image", { href: urlB, x: wa + gap, y: 0, width: wb, height: WHY_HEIGHT, preserveAspectRatio: "none" }));
  for (const [box, x0, w, side] of [[ex.box_a, 0, wa, "a"], [ex.box_b, wa + gap, wb, "b"]]) {
    if (!box) continue;
    svg.append(svgEl("rect", {
      class: "compared", "data-side": side, x: x0 + box[0] * w, y: box[1] * WHY_HEIGHT,
      width: (box[2] - box[0]) * w, height: (box[3] - box[1]) * WHY_HEIGHT,
    }, svgEl("title", { text: `the framed photo of ${side} that was compared` })));
  }
  ex.matches.forEach(([xa, ya, xb, yb], i) => {
    svg.append(svgEl("line", {
      class: "match", x1: xa * wa, y1: ya * WHY_HEIGHT, x2: wa + gap + xb * wb, y2: yb * WHY_HEIGHT,
      // A presentation attribute, not a style: the page's CSP allows no inline styles.
      stroke: `hsl(${(i * 47) % 360}, 85%, 50%)`,
    }));
  });
  const notes = [
    ex.aligned
      ? `${ex.inliers} keypoints agree on one alignment (stored with the verdict: ${ex.stored_inliers ?? "–"})` +
        (ex.matches.length < ex.inliers ? `, ${ex.matches.length} drawn` : "")
      : "nothing aligns: no geometric match between the two pictures",
    `compared ${ex.compared}`,
  ];
  const caption = el("figcaption", {}, notes.join(" · "),
    ex.mirrored ? el("span", { class: "flag mirror-note", text: "b is a mirror image: lines join mirrored points" }) : null,
    ex.box_a || ex.box_b ? el("span", { class: "flag", text: "outlined: the framed photo compared" }) : null);
  const parts = [el("figure", { class: "why-matches" }, svg, caption)];
  if (ex.overlay_url) {
    const overlay = el("img", { class: "overlay", alt: "aligned overlay and difference" });
    blobUrl(`overlay:${pair.pair_id}`, ex.overlay_url).then((url) => { overlay.src = url; })
      .catch(() => { overlay.classList.add("missing"); });
    parts.push(el("figure", { class: "why-overlay" }, overlay, el("figcaption", { text:
      "left: a with b aligned onto it, half and half · right: their difference (bright where they differ, dark grey: not covered)" })));
  }
  view.replaceChildren(...parts);
}

function toggleWhy(row, pair, button) {
  const next = row.nextElementSibling;
  if (next && next.classList.contains("why-row")) {
    next.remove();
    button.textContent = "Why?";
    return;
  }
  const view = el("div", { class: "why-view", "data-pair-id": pair.pair_id }, el("p", { class: "muted", text: "aligning…" }));
  row.after(el("tr", { class: "why-row" }, el("td", { colspan: 9 }, view)));
  button.textContent = "Hide";
  fillWhy(view, pair).catch((error) => {
    if (error instanceof AuthError) return;
    view.replaceChildren(el("p", { class: "muted", text: `Could not explain this pair: ${error.message}` }));
  });
}

function clusterCard(cluster, searchedAd) {
  const imagesById = new Map(cluster.images.map((i) => [i.image_id, i]));
  const counts = cluster.verdicts;
  return el("article", { class: "cluster", "data-cluster-id": cluster.cluster_id },
    el("header", {},
      el("h2", { text: `cluster ${cluster.cluster_id.slice(0, 8)}`, title: cluster.cluster_id }),
      el("span", { class: "muted", text:
        `${cluster.images.length} images · ${cluster.ads.length} ads · confidence ${fmt(cluster.confidence, 3)}` +
        ` · updated ${when(cluster.updated_at)}` }),
      el("span", { class: "counts" },
        counts.confirmed ? el("span", { class: "pill ok", text: `${counts.confirmed} confirmed` }) : null,
        counts.not_duplicate ? el("span", { class: "pill bad", text: `${counts.not_duplicate} rejected` }) : null,
        counts.pending ? el("span", { class: "pill warn", text: `${counts.pending} to review` }) : null)),
    el("div", { class: "grid" }, cluster.images.map((image) => imageCard(image, searchedAd))),
    el("table", { class: "pairs" },
      el("thead", {}, el("tr", {},
        ["pair", "confidence", "pHash dist", "cosine", "SIFT inliers", "SSIM", "", "moderator", ""]
          .map((h) => el("th", { text: h })))),
      el("tbody", {}, cluster.pairs.map((pair) => pairRow(pair, imagesById)))));
}

async function loadClusters() {
  const filters = filtersFromForm();
  const params = queryFor(filters, state.offset);
  history.replaceState(null, "", `${location.pathname}${params.toString() ? `?${params}` : ""}`);
  params.set("limit", String(PAGE_SIZE));
  const main = $("clusters");
  try {
    const page = await getJSON(`/api/v1/admin/clusters?${params}`);
    if (!state.caller) return; // logged out while it loaded
    state.total = page.total;
    const first = page.total ? state.offset + 1 : 0;
    const last = state.offset + page.clusters.length;
    const scope = filters.ad_id ? ` with ad ${filters.ad_id}` : "";
    const noun = page.total === 1 ? "cluster" : "clusters";
    $("summary").textContent = `${page.total} ${noun}${scope} · showing ${first}–${last}`;
    $("prev").disabled = state.offset === 0;
    $("next").disabled = last >= page.total;
    if (page.clusters.length === 0) {
      main.replaceChildren(el("div", { class: "empty-state", text:
        filters.ad_id ? `No duplicate clusters contain ad ${filters.ad_id}.` : "No clusters match these filters." }));
      return;
    }
    const previous = state.thumbs;
    state.thumbs = new Map();
    main.replaceChildren(...page.clusters.map((c) => clusterCard(c, filters.ad_id)));
    forgetThumbnails(previous);
  } catch (error) {
    if (error instanceof AuthError) return;
    $("summary").textContent = "";
    main.replaceChildren(el("div", { class: "empty-state", text: `Could not load clusters: ${error.message}` }));
  }
}

function searchAd(adId) {
  $("f-ad").value = adId;
  state.offset = 0;
  loadClusters();
}

// ------------------------------------------------------------------------------- verdicts

// The verdict route's own 503: the verdict is saved, only the hand-over to the clusterer failed.
// Pressing the button again repeats it (idempotent); the clusterer also picks it up by itself once
// the event bus is back. Any other 503 (the database unreachable) saved nothing.
const STORED_NOT_APPLIED =
  "Verdict saved, but the clusters are not updated yet (the event bus is unavailable). " +
  "Press the button again in a moment; imgdup also applies it by itself once the bus is back.";

function storedNotApplied(response) {
  return response.status === 503 && response.headers.get("imgdup-verdict") === "stored";
}

// The row says what happened to its verdict, from the POST's own answer: saving while the request
// is out (it waits for the event bus to take the hand-over), the verdict once saved, "saved, not
// applied" on the route's 503, or what it said before when nothing was saved. Never from the reload
// that follows: that races the clusterer applying the verdict.
function markRow(row, verdict, stored, note) {
  if (!row) return null;
  const before = { className: row.className, cell: row.querySelector("td.verdict") };
  const cell = stored
    ? verdictCell({ moderator_verdict: stored })
    : el("td", { class: "verdict muted", text: note });
  if (stored && note) cell.append(el("div", { class: "muted applying", text: note }));
  before.cell.replaceWith(cell);
  if (verdict) row.className = verdict === "not_duplicate" ? "rejected" : "confirmed";
  return () => {
    cell.replaceWith(before.cell);
    row.className = before.className;
  };
}

async function sendVerdict(pairId, verdict, buttons, row) {
  const moderator = $("moderator").value.trim() || localStorage.getItem(STORE.moderator) || "";
  if (!moderator) {
    toast("Enter your moderator name first.", true);
    $("moderator").focus();
    return;
  }
  buttons.forEach((b) => { b.disabled = true; });
  const restore = markRow(row, null, null, "saving…");
  try {
    const response = await fetch(`/api/v1/pairs/${encodeURIComponent(pairId)}/verdict`, {
      method: "POST",
      headers: authHeaders({ "content-type": "application/json" }),
      body: JSON.stringify({ verdict, moderator }),
    });
    if (response.status === 401) {
      showLogin("The API no longer accepts your credential: log in again.");
      return;
    }
    if (response.status === 403) {
      if (restore) restore();
      toast("Your role may not record verdicts (moderators only).", true);
      return;
    }
    if (storedNotApplied(response)) {
      // No reload: it would show the verdict as recorded and disable the button to press again.
      markRow(row, verdict, { verdict, moderator, decided_at: null }, "saved, not applied yet: press again");
      toast(STORED_NOT_APPLIED, true);
      buttons.forEach((b) => { b.disabled = false; });
      return;
    }
    if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
    const stored = await response.json().catch(() => ({ verdict, moderator, decided_at: null }));
    markRow(row, stored.verdict, stored, "saved; clusters update in a moment");
    // The verdict's own button stays disabled (as a reload would render it), the other one works.
    buttons.forEach((b) => { b.disabled = Boolean(b.dataset) && b.dataset.verdict === stored.verdict; });
    toast(verdict === "confirmed" ? "Confirmed as a duplicate." : "Marked as not a duplicate.");
    // The clusters and statistics as the clusterer leaves them (the row reads the same either way).
    loadClusters();
    loadStats();
  } catch (error) {
    if (restore) restore();
    toast(`Could not save the verdict: ${error.message}`, true);
    buttons.forEach((b) => { b.disabled = false; });
  }
}

// ------------------------------------------------------------------------------- wiring

document.addEventListener("DOMContentLoaded", () => {
  $("moderator").value = localStorage.getItem(STORE.moderator) || "";
  $("moderator").addEventListener("change", () => localStorage.setItem(STORE.moderator, $("moderator").value.trim()));
  $("login-form").addEventListener("submit", logIn);
  $("logout").addEventListener("click", () => showLogin(""));
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    state.offset = 0;
    loadClusters();
  });
  $("clear").addEventListener("click", () => {
    $("filters").reset();
    state.offset = 0;
    loadClusters();
  });
  $("prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE_SIZE);
    loadClusters();
  });
  $("next").addEventListener("click", () => {
    state.offset += PAGE_SIZE;
    loadClusters();
  });
  filtersToForm(new URLSearchParams(location.search));
  start();
});
