// Draws spectra overlaid with plotly (served from our own static files), with the lines marked and
// labelled, an observed/rest-frame toggle, zoom presets that rescale both axes, and an option to offset
// the spectra from one another. Reads the JSON in #spectrum-data:
// {wave: [Å, observed], lines: {name: Å rest}, spectra: [{name, z, flux: [normalised or null], colour}],
//  title, frame, background?: {z_source, lines: {name: Å observed}, residual: [the query's, or null]}}.
(function () {
  const data = JSON.parse(document.getElementById("spectrum-data").textContent);
  const ZOOMS = { // rest-frame windows, Å
    full: null, hbeta: [4820, 5050], halpha: [6520, 6620], sii: [6690, 6760], oi: [6270, 6390],
  };
  const FALLBACK = ["#000000", "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7"];
  const LINE_COLOUR = "#7f3c00";
  const BACKGROUND_COLOUR = "#0072B2"; // a second galaxy's lines, and the residual they were found in
  const plot = document.getElementById("spectrum-plot");
  let frame = data.frame || "observed"; // the result page starts in the rest frame, where neighbours line up
  let zoom = "full";
  let offset = false;
  const queryZ = data.spectra[0].z;

  function scale(z) { return frame === "rest" ? 1 / (1 + z) : 1; }

  function xRange() {
    const window = ZOOMS[zoom];
    if (!window) return null;
    const s = frame === "rest" ? 1 : 1 + queryZ;
    return [window[0] * s, window[1] * s];
  }

  function within(s, range) { // the flux values of spectrum s drawn inside the x range (all if none)
    const k = scale(s.z);
    return s.flux.filter((f, j) => f !== null && (!range || (data.wave[j] * k >= range[0] && data.wave[j] * k <= range[1])));
  }

  function step(range) { // how far apart offset spectra sit: most of the query's spread in the window
    const values = within(data.spectra[0], range).sort((a, b) => a - b);
    if (values.length < 2) return 1;
    const spread = values[Math.floor(0.98 * (values.length - 1))] - values[Math.floor(0.02 * (values.length - 1))];
    return Math.max(0.8 * spread, 0.1);
  }

  function backgroundTraces() { // the query's residual (flux less its running median), as the scan searched it
    if (!data.background) return [];
    const k = scale(queryZ);
    return [{ x: data.wave.map((w) => w * k), y: data.background.residual, type: "scatter", mode: "lines",
      name: "query residual (flux − running median)", line: { width: 1, color: BACKGROUND_COLOUR }, opacity: 0.7,
      connectgaps: false }];
  }

  function traces(range) {
    const shift = offset ? step(range) : 0;
    return data.spectra.map((s, i) => ({
      x: data.wave.map((w) => w * scale(s.z)), y: s.flux.map((f) => (f === null ? null : f + i * shift)),
      type: "scatter", mode: "lines", name: s.name + (shift && i ? ` (+${(i * shift).toFixed(2)})` : ""),
      line: { width: i === 0 ? 1.6 : 1, color: s.colour || FALLBACK[i % FALLBACK.length] },
      opacity: i === 0 ? 1 : 0.8, connectgaps: false,
    }));
  }

  function yRange(drawn, range) { // the window's own flux range, so weak lines are not flattened
    if (!range) return null;
    let lo = Infinity, hi = -Infinity;
    drawn.forEach((t) => t.x.forEach((x, j) => {
      const y = t.y[j];
      if (y !== null && x >= range[0] && x <= range[1]) { lo = Math.min(lo, y); hi = Math.max(hi, y); }
    }));
    if (!isFinite(lo)) return null;
    const pad = 0.08 * Math.max(hi - lo, 0.05);
    return [lo - pad, hi + pad];
  }

  function lineMarks(range) { // each line where it falls on the query; labels staggered where they crowd
    const lineScale = frame === "rest" ? 1 : 1 + queryZ;
    const lo = range ? range[0] : data.wave[0] * scale(queryZ);
    const hi = range ? range[1] : data.wave[data.wave.length - 1] * scale(queryZ);
    const lines = Object.entries(data.lines).map(([name, rest]) => ({ name, wave: rest * lineScale }))
      .filter((l) => l.wave > lo && l.wave < hi).sort((a, b) => a.wave - b.wave);
    const gap = 0.03 * (hi - lo), lastAt = [];
    lines.forEach((l) => {
      let level = lastAt.findIndex((x) => l.wave - x > gap);
      if (level < 0) level = lastAt.length;
      lastAt[level] = l.wave;
      l.level = level;
    });
    const behind = Object.entries((data.background || {}).lines || {}) // observed Å, drawn in the query's frame
      .map(([name, observed]) => ({ name, wave: observed * scale(queryZ) })).filter((l) => l.wave > lo && l.wave < hi);
    return {
      shapes: lines.map((l) => ({ type: "line", x0: l.wave, x1: l.wave, yref: "paper", y0: 0, y1: 1,
        line: { width: 1, dash: "dot", color: LINE_COLOUR } })).concat(behind.map((l) => ({ type: "line",
        x0: l.wave, x1: l.wave, yref: "paper", y0: 0, y1: 1, line: { width: 1.5, dash: "dash", color: BACKGROUND_COLOUR } }))),
      annotations: lines.map((l) => ({ x: l.wave, yref: "paper", y: 1 - 0.2 * (l.level % 4), text: l.name,
        showarrow: false, textangle: -90, font: { size: 10, color: LINE_COLOUR }, xanchor: "right", yanchor: "top" }))
        .concat(behind.map((l) => ({ x: l.wave, yref: "paper", y: 0.02, text: l.name, showarrow: false, textangle: -90,
          font: { size: 10, color: BACKGROUND_COLOUR }, xanchor: "left", yanchor: "bottom" }))),
    };
  }

  function draw() {
    const range = xRange();
    const drawn = traces(range).concat(backgroundTraces());
    const yWindow = yRange(drawn, range);
    const marks = lineMarks(range);
    Plotly.react(plot, drawn, {
      title: { text: data.title },
      xaxis: { title: { text: (frame === "rest" ? "rest-frame" : "observed") + " wavelength (Å, vacuum)" },
        range: range, autorange: range === null },
      yaxis: { title: { text: "F<sub>λ</sub> / its median over rest 5300–5850 Å (dimensionless)" },
        range: yWindow, autorange: yWindow === null },
      shapes: marks.shapes, annotations: marks.annotations, margin: { t: 50 },
      legend: { orientation: "h", y: -0.2 }, showlegend: data.spectra.length > 1,
    }, { responsive: true });
    plot.dataset.frame = frame;
    plot.dataset.zoom = zoom;
    plot.dataset.offset = offset ? "on" : "off";
    document.querySelectorAll("[data-frame]").forEach((b) => b.classList.toggle("active", b.dataset.frame === frame));
    document.querySelectorAll("[data-zoom]").forEach((b) => b.classList.toggle("active", b.dataset.zoom === zoom));
    document.querySelectorAll("[data-offset]").forEach((b) => b.classList.toggle("active", (b.dataset.offset === "on") === offset));
  }

  document.querySelectorAll("[data-frame]").forEach((b) => b.addEventListener("click", () => { frame = b.dataset.frame; draw(); }));
  document.querySelectorAll("[data-zoom]").forEach((b) => b.addEventListener("click", () => { zoom = b.dataset.zoom; draw(); }));
  document.querySelectorAll("[data-offset]").forEach((b) => {
    if (data.spectra.length < 2) b.hidden = true;
    b.addEventListener("click", () => { offset = b.dataset.offset === "on"; draw(); });
  });
  if (data.spectra.length < 2) document.querySelectorAll(".offset-label").forEach((e) => { e.hidden = true; });
  draw();
})();
