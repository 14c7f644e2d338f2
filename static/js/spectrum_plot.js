// Draws one preprocessed spectrum with plotly (served from our own static files).
(function () {
  const data = JSON.parse(document.getElementById("spectrum-data").textContent);
  const trace = {
    x: data.wave, y: data.flux, type: "scattergl", mode: "lines", name: "normalised flux",
    line: { width: 1, color: "#1f4e79" }, connectgaps: false,
  };
  const lo = data.wave[0], hi = data.wave[data.wave.length - 1];
  const lines = data.lines.filter((l) => l.wave > lo && l.wave < hi);
  const shapes = lines.map((l) => ({
    type: "line", x0: l.wave, x1: l.wave, yref: "paper", y0: 0, y1: 1,
    line: { width: 1, dash: "dot", color: "#b03a2e" },
  }));
  const annotations = lines.map((l, i) => ({
    x: l.wave, yref: "paper", y: 1 - 0.05 * (i % 3), text: l.name, showarrow: false,
    textangle: -90, font: { size: 10, color: "#b03a2e" }, xanchor: "right",
  }));
  Plotly.newPlot("spectrum-plot", [trace], {
    title: { text: data.title },
    xaxis: { title: { text: "observed wavelength (Å, vacuum)" } },
    yaxis: { title: { text: "flux / median over rest 5300–5850 Å" } },
    shapes: shapes, annotations: annotations, margin: { t: 50 }, showlegend: false,
  }, { responsive: true });
})();
