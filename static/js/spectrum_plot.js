// Draws spectra overlaid with plotly (served from our own static files), with the lines marked and
// labelled, an observed/rest-frame toggle and zoom presets. Reads the JSON in #spectrum-data:
// {wave: [Å, observed], lines: {name: Å rest}, spectra: [{name, z, flux: [normalised or null]}], title, frame}.
(function () {
  const data = JSON.parse(document.getElementById("spectrum-data").textContent);
  const ZOOMS = { // rest-frame windows, Å
    full: null, hbeta: [4820, 5050], halpha: [6520, 6620], sii: [6690, 6760], oi: [6270, 6390],
  };
  const COLOURS = ["#1f4e79", "#c0392b", "#27ae60", "#8e44ad", "#d68910", "#7f8c8d"];
  const plot = document.getElementById("spectrum-plot");
  let frame = data.frame || "observed"; // the result page starts in the rest frame, where neighbours line up
  let zoom = "full";
  const queryZ = data.spectra[0].z;

  function scale(z) { return frame === "rest" ? 1 / (1 + z) : 1; }

  function traces() {
    return data.spectra.map((s, i) => ({
      x: data.wave.map((w) => w * scale(s.z)), y: s.flux, type: "scattergl", mode: "lines", name: s.name,
      line: { width: i === 0 ? 1.6 : 1, color: COLOURS[i % COLOURS.length] }, opacity: i === 0 ? 1 : 0.75,
      connectgaps: false,
    }));
  }

  function lineMarks() { // each line where it falls on the query
    const lineScale = frame === "rest" ? 1 : 1 + queryZ;
    const lo = data.wave[0] * scale(queryZ), hi = data.wave[data.wave.length - 1] * scale(queryZ);
    const lines = Object.entries(data.lines).map(([name, rest]) => ({ name, wave: rest * lineScale }))
      .filter((l) => l.wave > lo && l.wave < hi);
    return {
      shapes: lines.map((l) => ({ type: "line", x0: l.wave, x1: l.wave, yref: "paper", y0: 0, y1: 1,
        line: { width: 1, dash: "dot", color: "#b03a2e" } })),
      annotations: lines.map((l, i) => ({ x: l.wave, yref: "paper", y: 1 - 0.06 * (i % 3), text: l.name,
        showarrow: false, textangle: -90, font: { size: 10, color: "#b03a2e" }, xanchor: "right" })),
    };
  }

  function xRange() {
    const window = ZOOMS[zoom];
    if (!window) return null;
    const s = frame === "rest" ? 1 : 1 + queryZ;
    return [window[0] * s, window[1] * s];
  }

  function draw() {
    const range = xRange();
    const marks = lineMarks();
    Plotly.react(plot, traces(), {
      title: { text: data.title },
      xaxis: { title: { text: (frame === "rest" ? "rest-frame" : "observed") + " wavelength (Å, vacuum)" },
        range: range, autorange: range === null },
      yaxis: { title: { text: "flux / median over rest 5300–5850 Å" }, autorange: true },
      shapes: marks.shapes, annotations: marks.annotations, margin: { t: 50 },
      legend: { orientation: "h", y: -0.2 }, showlegend: data.spectra.length > 1,
    }, { responsive: true });
    plot.dataset.frame = frame;
    plot.dataset.zoom = zoom;
    document.querySelectorAll("[data-frame]").forEach((b) => b.classList.toggle("active", b.dataset.frame === frame));
    document.querySelectorAll("[data-zoom]").forEach((b) => b.classList.toggle("active", b.dataset.zoom === zoom));
  }

  document.querySelectorAll("[data-frame]").forEach((b) => b.addEventListener("click", () => { frame = b.dataset.frame; draw(); }));
  document.querySelectorAll("[data-zoom]").forEach((b) => b.addEventListener("click", () => { zoom = b.dataset.zoom; draw(); }));
  draw();
})();
