// Loaded between require.js and the ipywidgets HTML manager (book/_ext/book_site.py).
(function () {
  // The manager's webpack chunks and fonts are requested beside the module "@jupyter-widgets/
  // html-manager/dist/..."; map that name to the copy this site serves in _static/widgets.
  var here = document.currentScript.src;
  var widgets = here.slice(0, here.lastIndexOf("/") + 1) + "widgets";
  require.config({ paths: { "@jupyter-widgets/html-manager/dist": widgets } });
  // The manager typesets widget labels with MathJax 2's MathJax.Hub.Queue; the book serves
  // MathJax 3, which has no Hub: offer that one call, done with MathJax 3's typesetPromise.
  function patch() {
    var mj = window.MathJax;
    if (mj && mj.typesetPromise && !mj.Hub) {
      mj.Hub = { Queue: function (job) { mj.typesetPromise([job[2]]).catch(function () {}); } };
    }
  }
  document.addEventListener("DOMContentLoaded", patch);
  window.addEventListener("load", patch);
})();
