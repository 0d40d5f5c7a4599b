// ngio-async viewer: lists the served datasets and shows one in OpenSeadragon over the tile API.
// Routes: "#" (the list) and "#/<dataset name>" (a plate's field: "#/<plate>/<row>/<column>/<field>",
// an image of a bioformats2raw container: "#/<container>/<path>").
// State for tests and the console: window.ngioViewer.

const MISSING_ASSETS = "viewer assets not installed: run make viewer";
const PALETTE = ["00FFFF", "FF00FF", "FFFF00", "00FF00", "FF0000", "0000FF", "FFFFFF"];

const state = {
  ready: false, // true once the current dataset's first tile has loaded
  dataset: null, // the /api/datasets/{name} document
  channels: [], // [{index, label, color, window, auto, active}] as currently selected
  labels: [], // [{name, shown}]: the dataset's label images, overlaid when shown
  planes: {}, // {t, z} indices for the axes the dataset has
  tileRequests: 0, // tile URLs handed to OpenSeadragon
  tilesLoaded: 0, // "tile-loaded" events (tiles that downloaded new data)
  tilesFailed: 0,
  failures: [], // the last few tile-load-failed messages
  lastTileUrl: null,
  level: null, // the pyramid level shown at the current zoom
  zoom: null, // screen pixels per level-0 pixel
  error: null,
  viewer: null, // the OpenSeadragon.Viewer
};
window.ngioViewer = state;

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function status(text) {
  $("status").textContent = text;
}

function notice(text) {
  const box = $("notice");
  box.textContent = text ?? "";
  box.hidden = !text;
}

function fail(err) {
  state.error = String(err?.message ?? err);
  notice(state.error);
  status("");
}

async function getJSON(url) {
  const response = await fetch(url);
  if (!response.ok) {
    let detail = "";
    try {
      const body = await response.json();
      detail = body.message ?? body.error ?? "";
    } catch {
      // not JSON: the status line says enough
    }
    throw new Error(`${url}: HTTP ${response.status}${detail ? ` (${detail})` : ""}`);
  }
  return response.json();
}

// A dataset name in a URL path: each segment encoded ("plate/A/1/0" keeps its slashes).
const namePath = (name) => name.split("/").map(encodeURIComponent).join("/");

const osdMissing = () => typeof window.OpenSeadragon !== "function";

// ---------------------------------------------------------------- formatting

function fmt(value) {
  if (value === null || value === undefined) return "";
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v === "number")) return value.join(" × ");
    return value.map((v) => (typeof v === "object" ? (v?.label ?? v?.name ?? "") : v)).join(", ");
  }
  if (typeof value === "object") return value.name ?? value.label ?? JSON.stringify(value);
  return String(value);
}

// RRGGBB without "#"; a lone uncoloured channel is grey, several get distinct palette colours.
function hex(color, i, count) {
  const text = String(color ?? "").replace(/^#/, "").toUpperCase();
  if (/^[0-9A-F]{6}$/.test(text)) return text;
  return count === 1 ? "FFFFFF" : PALETTE[i % PALETTE.length];
}

// ---------------------------------------------------------------- the list

async function showList() {
  $("dataset-view").hidden = true;
  $("list-view").hidden = false;
  $("crumb").textContent = "";
  document.title = "ngio-async viewer";
  closeViewer();
  if (osdMissing()) notice(MISSING_ASSETS);
  status("loading…");
  const token = routeToken;
  const { datasets, plates = [], containers = [] } = await getJSON("api/datasets");
  if (token !== routeToken) return;
  // plate fields are listed in their plate's grid, container images under their container
  const images = datasets.filter((ds) => !ds.plate && !ds.container);
  const body = $("datasets");
  body.replaceChildren();
  for (const ds of images) {
    const link = el("a", { href: `#/${namePath(ds.name)}`, textContent: ds.name });
    const levels = Array.isArray(ds.levels) ? ds.levels.length : ds.levels;
    const cells = [ds.ngff_version, ds.axes, ds.shape, ds.dtype, levels, ds.channels];
    body.append(el("tr", {}, el("td", {}, link), ...cells.map((c) => el("td", { textContent: fmt(c) }))));
  }
  if (!images.length) {
    body.append(el("tr", {}, el("td", { colSpan: 7, className: "empty", textContent: "no datasets" })));
  }
  $("images").hidden = !images.length && plates.length + containers.length > 0;
  renderContainers(containers);
  renderPlates(plates, datasets);
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const counts = [plural(images.length, "dataset")];
  if (containers.length) counts.push(plural(containers.length, "container"));
  if (plates.length) counts.push(plural(plates.length, "plate"));
  status(counts.join(", "));
}

// One list per bioformats2raw container: a link to each of its images (opened on first view).
function renderContainers(containers) {
  const sections = containers.map((c) => {
    const links = c.images.map((name) => {
      const path = name.slice(c.name.length + 1);
      const missing = c.unavailable?.includes(path);
      return el("li", {}, el("a", { href: `#/${namePath(name)}`, textContent: path, title: name, className: missing ? "unavailable" : "" }));
    });
    const info = [`NGFF ${c.ngff_version ?? "?"}`, `${c.images.length} images`];
    if (c.unavailable?.length) info.push(`not served: ${c.unavailable.join(", ")}`);
    const section = el("section", { className: "container" }, el("h2", { textContent: `Container ${c.name}` }));
    section.dataset.container = c.name;
    section.append(el("p", { className: "plate-info", textContent: info.join(" · ") }), el("ul", { className: "container-images" }, ...links));
    return section;
  });
  $("containers").replaceChildren(...sections);
}

// One grid per plate: rows x columns, each well cell links to its fields of view.
function renderPlates(plates, datasets) {
  const byName = new Map(datasets.map((ds) => [ds.name, ds]));
  const sections = plates.map((plate) => {
    const byWell = new Map();
    for (const name of plate.fields) {
      const ds = byName.get(name);
      if (!ds?.plate) continue;
      byWell.set(ds.plate.well, [...(byWell.get(ds.plate.well) ?? []), ds]);
    }
    const head = el("tr", {}, el("th"), ...plate.columns.map((c) => el("th", { textContent: c })));
    const rows = plate.rows.map((r) =>
      el(
        "tr",
        {},
        el("th", { textContent: r }),
        ...plate.columns.map((c) => {
          const fields = byWell.get(`${r}/${c}`) ?? [];
          const links = fields.map((ds) =>
            el("a", { href: `#/${namePath(ds.name)}`, textContent: ds.plate.field, title: ds.name }),
          );
          return el("td", { title: `well ${r}/${c}`, className: fields.length ? "" : "empty" }, ...links);
        }),
      ),
    );
    const title = plate.plate_name ? `${plate.name} (${plate.plate_name})` : plate.name;
    const info = [`NGFF ${plate.ngff_version}`, `${plate.wells.length} wells`, `${plate.fields.length} fields`];
    if (plate.unavailable?.length) info.push(`not served: ${plate.unavailable.join(", ")}`);
    const grid = el("table", { className: "plate-grid" }, el("thead", {}, head), el("tbody", {}, ...rows));
    const section = el("section", { className: "plate" }, el("h2", { textContent: `Plate ${title}` }));
    section.dataset.plate = plate.name;
    section.append(el("p", { className: "plate-info", textContent: info.join(" · ") }), grid);
    return section;
  });
  $("plates").replaceChildren(...sections);
}

// ---------------------------------------------------------------- one dataset

function axisIndex(ds, name) {
  return ds.axes.findIndex((a) => (a.name ?? a) === name);
}

function levelSize(ds, level) {
  const shape = ds.levels[level].shape;
  return { width: shape[axisIndex(ds, "x")], height: shape[axisIndex(ds, "y")] };
}

function tileQuery() {
  const active = state.channels.filter((c) => c.active);
  if (!active.length) return "";
  const params = [`c=${active.map((c) => c.index).join(",")}`];
  // One window per channel shown: those set (omero or typed in), the server's default for the
  // others (a window set on one channel must not be dropped because another has none).
  const windows = active.map((c) => c.window ?? c.auto);
  if (active.some((c) => c.window) && windows.every(Boolean)) {
    params.push(`window=${windows.map((w) => `${w[0]}:${w[1]}`).join(",")}`);
  }
  params.push(`color=${active.map((c) => c.color).join(",")}`);
  const labels = state.labels.filter((l) => l.shown);
  if (labels.length) params.push(`labels=${labels.map((l) => encodeURIComponent(l.name)).join(",")}`);
  return `?${params.join("&")}`;
}

// A level-0 plane index on pyramid level `level` (pyramids may downsample z, and t in principle).
function planeAt(ds, axis, level) {
  const i = axisIndex(ds, axis);
  const value = state.planes[axis] ?? 0;
  if (i < 0) return 0;
  const full = ds.levels[0].shape[i];
  const here = ds.levels[level].shape[i];
  return Math.min(here - 1, Math.floor((value * here) / full));
}

function tileUrl(level, row, col) {
  const ds = state.dataset;
  const [t, z] = [planeAt(ds, "t", level), planeAt(ds, "z", level)];
  const name = namePath(ds.name);
  return `api/datasets/${name}/tiles/${level}/${t}/${z}/${row}/${col}.png${tileQuery()}`;
}

// OpenSeadragon's level L is pyramid level (n - 1 - L): its highest level is our level 0. The level
// scales come from the real level shapes, so odd sizes and non-2x pyramids line up exactly.
function tileSource(ds) {
  const n = ds.levels.length;
  const full = levelSize(ds, 0);
  const scales = ds.levels.map((_, i) => levelSize(ds, i).width / full.width);
  const ours = (osdLevel) => Math.min(n - 1, Math.max(0, n - 1 - osdLevel));
  return {
    width: full.width,
    height: full.height,
    tileSize: ds.tile_size ?? 512,
    tileOverlap: 0,
    minLevel: 0,
    maxLevel: n - 1,
    getLevelScale: (osdLevel) => scales[ours(osdLevel)],
    getTileUrl: (osdLevel, col, row) => {
      const url = tileUrl(ours(osdLevel), row, col);
      state.tileRequests += 1;
      state.lastTileUrl = url;
      return url;
    },
  };
}

function closeViewer() {
  if (state.viewer) {
    state.viewer.destroy();
    state.viewer = null;
  }
  $("osd").replaceChildren();
  $("readout").textContent = "";
  $("cursor").textContent = "";
}

function createViewer() {
  const viewer = window.OpenSeadragon({
    element: $("osd"),
    prefixUrl: "static/vendor/openseadragon/images/",
    drawer: "canvas",
    showNavigator: true,
    navigatorPosition: "BOTTOM_RIGHT",
    showRotationControl: false,
    maxZoomPixelRatio: 8,
    visibilityRatio: 0.5,
    imageLoaderLimit: 6,
    timeout: 60000,
    gestureSettingsMouse: { clickToZoom: false },
  });
  viewer.addHandler("tile-loaded", () => {
    state.tilesLoaded += 1;
    if (!state.ready) {
      state.ready = true;
      status("");
    }
  });
  viewer.addHandler("tile-load-failed", (e) => {
    if (viewer.world.getIndexOfItem(e.tiledImage) < 0) return; // aborted: its image was replaced
    state.tilesFailed += 1;
    state.failures = [...state.failures.slice(-4), `${e.tile?.getUrl?.() ?? ""}: ${e.message}`];
    status(`tile failed: ${e.message ?? "error"}`);
  });
  const tracker = new window.OpenSeadragon.MouseTracker({
    element: viewer.container,
    moveHandler: (e) => {
      const item = viewer.world.getItemAt(0);
      if (!item) return;
      const p = item.viewerElementToImageCoordinates(e.position);
      const { width, height } = levelSize(state.dataset, 0);
      const inside = p.x >= 0 && p.y >= 0 && p.x < width && p.y < height;
      $("cursor").textContent = inside ? `x ${Math.floor(p.x)} · y ${Math.floor(p.y)}` : "";
    },
    leaveHandler: () => {
      $("cursor").textContent = "";
    },
  });
  viewer.addHandler("destroy", () => tracker.destroy());
  viewer.addHandler("animation", updateReadout);
  viewer.addHandler("open", updateReadout);
  viewer.addHandler("resize", updateReadout);
  return viewer;
}

function updateReadout() {
  const ds = state.dataset;
  const viewer = state.viewer;
  if (!ds || !viewer || !viewer.world.getItemCount()) return;
  const item = viewer.world.getItemAt(0);
  const zoom = item.viewportToImageZoom(viewer.viewport.getZoom(true)) * (window.devicePixelRatio || 1);
  const full = levelSize(ds, 0).width;
  let level = 0; // the coarsest level that still has >= 1 pixel per screen pixel
  for (let i = ds.levels.length - 1; i >= 0; i -= 1) {
    if (levelSize(ds, i).width / full >= zoom) {
      level = i;
      break;
    }
  }
  state.level = level;
  state.zoom = zoom;
  const { width, height } = levelSize(ds, level);
  const pct = zoom >= 0.1 ? Math.round(zoom * 100) : (zoom * 100).toFixed(1);
  $("readout").textContent = `level ${level} of ${ds.levels.length - 1} (${width} × ${height}) · ${pct}%`;
}

// Swap in a tiled image with the new channels or plane; drop the old one once the new one is drawn.
function refresh() {
  const viewer = state.viewer;
  if (!viewer) return;
  viewer.addTiledImage({
    tileSource: tileSource(state.dataset),
    index: viewer.world.getItemCount(),
    success: ({ item }) => {
      const shown = viewer.world.getItemAt(0);
      for (let i = viewer.world.getItemCount() - 1; i >= 0; i -= 1) {
        const other = viewer.world.getItemAt(i);
        if (other !== item && other !== shown) viewer.world.removeItem(other); // superseded
      }
      item.whenFullyLoaded(() => {
        for (let i = viewer.world.getItemCount() - 1; i >= 0; i -= 1) {
          const other = viewer.world.getItemAt(i);
          if (other !== item) viewer.world.removeItem(other);
        }
      });
    },
    error: (e) => fail(e.message ?? "could not open the tile source"),
  });
}

let refreshTimer = null;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, 120);
}

function renderInfo(ds) {
  const size = levelSize(ds, 0);
  const rows = [
    ["NGFF", ds.ngff_version],
    ["axes", ds.axes.map((a) => a.name ?? a).join("")],
    ["size", `${size.width} × ${size.height}`],
    ["dtype", ds.dtype],
    ["levels", ds.levels.length],
  ];
  if (ds.plate) {
    const where = [["plate", ds.plate.name], ["well", ds.plate.well], ["field", ds.plate.field]];
    if ((ds.plate.acquisition ?? null) !== null) where.push(["acquisition", ds.plate.acquisition]);
    rows.unshift(...where);
  }
  if (ds.container) rows.unshift(["container", ds.container.name], ["image", ds.container.path]);
  const unit = ds.axes.find((a) => a.name === "x")?.unit;
  const scale = ds.levels[0].scale?.[axisIndex(ds, "x")];
  if (scale !== undefined) rows.push(["pixel", `${+scale.toPrecision(4)} ${unit ?? ""}`.trim()]);
  $("ds-info").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { textContent: k }), el("dd", { textContent: fmt(v) })]));
}

// A plate's field (a container's image): a select of every field of its plate (image of its
// container), to move between them.
async function renderFieldPicker(ds, token) {
  const pick = $("field-pick");
  pick.hidden = true;
  if (!ds.plate && !ds.container) return;
  const { datasets } = await getJSON("api/datasets");
  if (token !== routeToken) return;
  const fields = ds.plate
    ? datasets.filter((d) => d.plate?.name === ds.plate.name)
    : datasets.filter((d) => d.container?.name === ds.container.name);
  const label = (d) => {
    if (d.container) return `image ${d.container.path}`;
    const acquisition = d.plate.acquisition ?? null;
    return `${d.plate.well} · field ${d.plate.field}${acquisition === null ? "" : ` · acquisition ${acquisition}`}`;
  };
  pick.querySelector("span").textContent = ds.plate ? "Field of view" : "Image";
  const select = $("field-select");
  select.replaceChildren(
    ...fields.map((d) => el("option", { value: d.name, textContent: label(d), selected: d.name === ds.name })),
  );
  select.onchange = () => {
    location.hash = `#/${namePath(select.value)}`;
  };
  pick.hidden = fields.length < 2;
}

function renderChannels() {
  const list = $("channel-list");
  $("channels").hidden = state.channels.length < 2;
  list.replaceChildren();
  for (const ch of state.channels) {
    const box = el("input", { type: "checkbox", checked: ch.active, title: "show this channel" });
    box.dataset.channel = ch.index;
    box.addEventListener("change", () => {
      if (!box.checked && state.channels.filter((c) => c.active).length === 1) {
        box.checked = true; // keep one channel on
        return;
      }
      ch.active = box.checked;
      refreshSoon();
    });
    const bound = (i) => {
      const placeholder = ch.auto ? String(+ch.auto[i].toPrecision(4)) : "auto";
      const input = el("input", { type: "number", placeholder, title: i ? "window end" : "window start" });
      if (ch.window) input.value = ch.window[i];
      input.addEventListener("change", () => {
        const inputs = [...input.parentElement.querySelectorAll("input[type=number]")];
        const [lo, hi] = inputs.map((box, j) => (box.value !== "" ? +box.value : ch.auto?.[j]));
        const typed = inputs.some((box) => box.value !== "");
        ch.window = typed && lo !== undefined && hi !== undefined && hi > lo ? [lo, hi] : null; // else automatic
        refreshSoon();
      });
      return input;
    };
    const swatch = el("span", { className: "swatch", title: `#${ch.color}` });
    swatch.style.background = `#${ch.color}`;
    list.append(el("label", { className: "channel" }, box, swatch, el("span", { className: "name", textContent: ch.label }), bound(0), bound(1)));
  }
}

// The label images: a checkbox each, painting it over the tiles (the server composites it).
function renderLabels() {
  $("labels").hidden = !state.labels.length;
  $("label-list").replaceChildren(
    ...state.labels.map((label) => {
      const box = el("input", { type: "checkbox", checked: label.shown, title: "overlay this label image" });
      box.dataset.label = label.name;
      box.addEventListener("change", () => {
        label.shown = box.checked;
        refreshSoon();
      });
      return el("label", { className: "channel" }, box, el("span", { className: "name", textContent: label.name }));
    }),
  );
}

function renderPlanes(ds) {
  const box = $("planes");
  box.replaceChildren();
  state.planes = {};
  for (const axis of ["t", "z"]) {
    const size = ds.sizes?.[axis] ?? (axisIndex(ds, axis) >= 0 ? ds.levels[0].shape[axisIndex(ds, axis)] : 0);
    if (!size) continue;
    state.planes[axis] = axis === "z" ? Math.floor((size - 1) / 2) : 0; // middle z plane, first t
    if (size < 2) continue;
    const value = el("span", { textContent: `${state.planes[axis]} / ${size - 1}` });
    const slider = el("input", { type: "range", min: 0, max: size - 1, step: 1, value: state.planes[axis] });
    slider.id = `plane-${axis}`;
    slider.addEventListener("input", () => {
      state.planes[axis] = +slider.value;
      value.textContent = `${slider.value} / ${size - 1}`;
      refreshSoon();
    });
    box.append(el("label", {}, el("span", {}, el("span", { textContent: axis }), value), slider));
  }
}

async function openDataset(name) {
  $("list-view").hidden = true;
  $("dataset-view").hidden = false;
  $("crumb").textContent = `/ ${name}`;
  document.title = `${name} · ngio-async viewer`;
  closeViewer();
  Object.assign(state, { ready: false, dataset: null, tileRequests: 0, tilesLoaded: 0, tilesFailed: 0 });
  status("loading…");
  const token = routeToken;
  const ds = await getJSON(`api/datasets/${namePath(name)}`);
  if (token !== routeToken) return; // the user moved on meanwhile
  state.dataset = ds;
  // What the server shows by default ("display"): the same channels and colours as a plain tile URL.
  const validWindow = (w) => Array.isArray(w) && w.length === 2 && w[1] > w[0];
  state.channels = ds.channels.map((c, i) => ({
    index: c.index ?? i,
    label: c.label ?? `channel ${c.index ?? i}`,
    color: hex(c.display?.color ?? c.color, i, ds.channels.length),
    window: validWindow(c.window) ? [...c.window] : null,
    auto: validWindow(c.display?.window) ? [...c.display.window] : null, // the server's default
    active: c.display?.shown ?? c.active ?? true,
  }));
  if (state.channels.length && !state.channels.some((c) => c.active)) state.channels[0].active = true;
  state.labels = (ds.labels ?? []).map((name) => ({ name, shown: false }));
  $("ds-name").textContent = ds.name;
  renderInfo(ds);
  renderFieldPicker(ds, token).catch(() => {}); // optional: the plate's other fields
  renderChannels();
  renderLabels();
  renderPlanes(ds);
  if (osdMissing()) {
    $("osd").replaceChildren(el("div", { className: "message", textContent: MISSING_ASSETS }));
    notice(MISSING_ASSETS);
    status("");
    return;
  }
  state.viewer = createViewer();
  state.viewer.open(tileSource(ds));
}

let routeToken = 0;
function route() {
  routeToken += 1;
  notice(null);
  state.error = null;
  const name = decodeURIComponent(location.hash.replace(/^#\/?/, ""));
  (name ? openDataset(name) : showList()).catch(fail);
}

window.addEventListener("hashchange", route);
route();
