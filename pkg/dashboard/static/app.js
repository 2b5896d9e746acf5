// The dashboard page: it renders the state the plugin pushes as
// server-sent events (/api/events). Everything it needs is served by the
// plugin itself; the peer graphs are SVG drawn by the plugin.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function when(t) {
  if (!t) return "—";
  const s = Math.round((new Date(t) - Date.now()) / 1000);
  if (s <= 0) return "expired";
  if (s < 3600) return "in " + Math.round(s / 60) + "m";
  if (s < 172800) return "in " + Math.round(s / 3600) + "h";
  return "in " + Math.round(s / 86400) + "d";
}

function rows(table, items, cells) {
  const body = $(table).tBodies[0];
  body.replaceChildren(...(items || []).map((item) => el("tr", {}, ...cells(item).map((c) => el("td", c.cls ? { class: c.cls } : {}, c.text ?? c)))));
}

// The graphs' SVG, inlined so that it can be styled and read, fetched only
// when its version changes. The page may have been drawn again while the
// picture was on its way: it goes to whichever element shows the graph now.
const svgs = {};
const wanted = {};

function drawGraph(picture, key, version) {
  const cached = svgs[key];
  if (cached) picture.innerHTML = cached.svg;
  if ((cached && cached.version === version) || wanted[key] === version) return;
  wanted[key] = version;
  fetch(`/graph/${key}.svg?v=${version}`)
    .then((r) => (r.ok ? r.text() : Promise.reject(new Error(r.status + " " + r.statusText))))
    .then((svg) => {
      if (wanted[key] !== version) return; // a newer picture is on its way
      svgs[key] = { version, svg };
      for (const shown of document.querySelectorAll(`[data-graph="${key}"]`)) shown.innerHTML = svg;
    })
    .catch((err) => {
      if (wanted[key] === version) delete wanted[key];
      for (const shown of document.querySelectorAll(`[data-graph="${key}"]`)) shown.textContent = "the graph could not be drawn: " + err.message;
    });
}

function render(state) {
  $("generated").textContent = "updated " + new Date(state.generated).toLocaleTimeString();
  rows("sites", state.sites, (s) => [s.metadata.name, s.status.nodes, s.status.ready + "/" + s.status.nodes, s.status.pods]);
  rows("nodes", state.nodes, (n) => [
    n.metadata.name, n.spec.site, n.spec.overlayIP,
    { text: n.status.state, cls: n.status.state === "Ready" ? "ok" : "bad" },
    when(n.status.credentialExpires),
    n.status.tokenState === "Valid" ? when(n.status.tokenExpires) : n.status.tokenState,
  ]);
  $("apps").replaceChildren(...state.apps.map((app) => {
    const key = app.namespace + "/" + app.name;
    const columns = el("div", { class: "columns" }, ...app.sites.map((s) => el("div", { class: "column", "data-site": s.site },
      el("h4", {}, s.site || "(no site)"),
      ...s.peers.map((p) => el("div", { class: "peer " + (p.ready ? "ok" : "bad"), "data-pod": p.pod }, (p.ready ? "● " : "○ ") + p.pod + " ", el("span", { class: "muted" }, p.hostIP || p.phase))))));
    const box = el("div", { class: "app", "data-app": key }, el("h3", {}, key), columns);
    const graph = state.graphs[key];
    if (graph) {
      const g = graph.summary;
      box.append(el("div", { class: "muted" }, `${g.peers} peers, ${g.answered} answered; ${g.components} connected component(s); ${g.links} links, ${g.crossSiteLinks} across sites (${g.crossSitePercent}%)`));
      const picture = el("div", { class: "graph", "data-graph": key });
      box.append(picture);
      drawGraph(picture, key, graph.version);
    }
    return box;
  }));
  $("rollouts").replaceChildren(...state.rollouts.map((r) => {
    const box = el("div", { class: "app", "data-rollout": r.metadata.namespace + "/" + r.metadata.name },
      el("h3", {}, `${r.metadata.namespace}/${r.spec.workload.kind.toLowerCase()}/${r.metadata.name} revision ${r.spec.revision}: `, el("span", { class: r.status.phase === "Failed" ? "bad" : "ok" }, r.status.phase)));
    if (r.status.message) box.append(el("div", { class: "bad" }, r.status.message));
    for (const s of r.status.sites || []) {
      const pct = s.desired ? Math.round(100 * s.updated / s.desired) : 0;
      const bar = el("span", { class: "bar" }, el("span", { style: `width:${pct}%` }));
      box.append(el("div", { class: "wave", "data-site": s.name }, `wave ${s.wave}`, el("b", {}, s.name), bar, `${s.updated}/${s.desired} updated, ${s.ready} ready`, el("span", { class: "muted" }, s.result || "")));
    }
    return box;
  }));
  $("problems-section").hidden = state.problems.length === 0;
  $("problems").replaceChildren(...state.problems.map((p) => el("li", {}, p)));
}

function connect() {
  const source = new EventSource("/api/events");
  source.onopen = () => { $("connection").textContent = "live"; $("connection").className = "up"; };
  source.onmessage = (e) => render(JSON.parse(e.data));
  source.onerror = () => { $("connection").textContent = "reconnecting…"; $("connection").className = "down"; };
}

connect();
