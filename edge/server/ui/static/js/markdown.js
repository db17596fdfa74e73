// Markdown -> a sanitized DOM fragment: marked parses, highlight.js colours code, KaTeX writes math as
// MathML (native in the browser: no fonts, no stylesheet), DOMPurify removes anything that could run.
// Raw HTML inside markdown is shown as text, never interpreted; pictures are never fetched.
import { Marked } from '../vendor/marked.js';
import DOMPurify from '../vendor/purify.js';
import hljs from '../vendor/highlight.js';
import katex from '../vendor/katex.js';

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

function tex(source, displayMode) {
  return katex.renderToString(source, {
    displayMode, output: 'mathml', throwOnError: false, trust: false, strict: 'ignore', maxExpand: 500,
  });
}

const BLOCK_MATH = /^(?:\$\$([\s\S]+?)\$\$|\\\[([\s\S]+?)\\\])/;
// $x$ needs no space inside either dollar and no digit after the closing one, so "$5 and $10" stays text
const INLINE_MATH = /^(?:\$\$([\s\S]+?)\$\$|\$(?![\s$])((?:\\.|[^\\$\n])+?)(?<!\s)\$(?!\d)|\\\(([\s\S]+?)\\\))/;

const math = [
  {
    name: 'blockMath', level: 'block',
    start: (src) => src.match(/\$\$|\\\[/)?.index,
    tokenizer(src) {
      const m = BLOCK_MATH.exec(src);
      if (m) return { type: 'blockMath', raw: m[0], tex: (m[1] ?? m[2]).trim() };
    },
    renderer: (token) => `<div class="math">${tex(token.tex, true)}</div>`,
  },
  {
    name: 'inlineMath', level: 'inline',
    start: (src) => src.match(/\$|\\\(/)?.index,
    tokenizer(src) {
      const m = INLINE_MATH.exec(src);
      if (m) return { type: 'inlineMath', raw: m[0], tex: m[1] ?? m[2] ?? m[3], display: m[1] !== undefined };
    },
    renderer: (token) => tex(token.tex, token.display),
  },
];

export function highlight(code, language) {
  if (language && hljs.getLanguage(language)) {
    return hljs.highlight(code, { language, ignoreIllegals: true }).value;
  }
  return escapeHtml(code);
}

const renderer = {
  html: ({ text }) => escapeHtml(text),
  image: ({ href, text }) => `<a href="${escapeHtml(href)}">${escapeHtml(text || href)}</a>`,
  code({ text, lang }) {
    const language = (lang || '').trim().split(/\s+/)[0];
    return `<div class="code"><div class="code-bar"><span>${escapeHtml(language)}</span></div>` +
      `<pre><code class="hljs">${highlight(text, language)}</code></pre></div>`;
  },
};

const marked = new Marked({ gfm: true, breaks: false, renderer, extensions: math });

const PURIFY = {
  USE_PROFILES: { html: true, mathMl: true },
  FORBID_TAGS: ['img', 'style', 'form', 'input', 'button', 'textarea', 'select', 'video', 'audio', 'iframe'],
  FORBID_ATTR: ['style', 'srcset'],
  ADD_FORBID_CONTENTS: ['annotation'], // KaTeX's copy of the TeX source: text only, never shown
  ADD_ATTR: ['target'],
  RETURN_DOM_FRAGMENT: true,
};

DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A') {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer');
  }
});

/** Markdown source -> a DocumentFragment that is safe to insert; code blocks get a copy button. */
export function renderMarkdown(source) {
  const fragment = DOMPurify.sanitize(marked.parse(source), PURIFY);
  for (const bar of fragment.querySelectorAll('.code-bar')) bar.append(copyButton());
  return fragment;
}

function copyButton() {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'copy';
  button.textContent = 'Copy';
  return button;
}

/** Any HTML string -> a safe fragment (for highlighted code built outside markdown). */
export function sanitize(html) {
  return DOMPurify.sanitize(html, PURIFY);
}
