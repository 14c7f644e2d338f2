// plotly.js's defaults name plotly's own servers (map shapes from cdn.plot.ly, "edit in Chart Studio" on
// cloud.plotly.com). None of our pages uses them; these settings make sure no plot ever asks for them.
Plotly.setPlotConfig({
  topojsonURL: "/static/vendor/plotly/",
  plotlyServerURL: "",
  showLink: false,
  showSendToCloud: false,
  showEditInChartStudio: false,
  typesetMath: false,
});
