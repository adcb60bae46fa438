//! The design system's components: fields with inline errors, checkbox groups, tables
//! whose sort, filter and page live in the URL, notices, empty states, confirmations.
//! Their look is `style/dip.css`.

use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos_router::hooks::{use_location, use_query_map};

use dip_admin::types::{AppError, ListQuery, Page, encode};

/// The list query of the current URL.
pub fn use_list_query(filters: &'static [&'static str]) -> Memo<ListQuery> {
    let query = use_query_map();
    Memo::new(move |_| {
        let q = query.read();
        ListQuery {
            q: q.get("q").unwrap_or_default(),
            sort: q.get("sort").unwrap_or_default(),
            desc: q.get("dir").as_deref() == Some("desc"),
            page: q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1),
            filters: filters
                .iter()
                .filter_map(|f| q.get(f).filter(|v| !v.is_empty()).map(|v| (f.to_string(), v)))
                .collect(),
        }
    })
}

/// The current URL with some query parameters replaced (empty values removed).
fn with_params(changes: &[(&str, String)]) -> String {
    let location = use_location();
    let path = location.pathname.get_untracked();
    let mut params: BTreeMap<String, String> = location
        .query
        .get_untracked()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        // A failed form post's error belongs to that one answer, not to other links.
        .filter(|(k, _)| k != "__err" && k != "__path")
        .collect();
    for (k, v) in changes {
        if v.is_empty() {
            params.remove(*k);
        } else {
            params.insert((*k).to_owned(), v.clone());
        }
    }
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// A sortable column header: a link that sorts on `column`, descending on a second click.
#[component]
pub fn SortHeader(column: &'static str, label: &'static str, query: ListQuery) -> impl IntoView {
    let active = query.sort == column;
    let desc = active && !query.desc;
    let href = with_params(&[
        ("sort", column.to_owned()),
        ("dir", if desc { "desc".into() } else { String::new() }),
        ("page", String::new()),
    ]);
    let sort = if !active {
        "none"
    } else if query.desc {
        "descending"
    } else {
        "ascending"
    };
    let arrow = if !active {
        ""
    } else if query.desc {
        " ▼"
    } else {
        " ▲"
    };
    view! {
        <th scope="col" aria-sort=sort>
            <a href=href>{label}{arrow}</a>
        </th>
    }
}

/// Page links under a table.
#[component]
pub fn Pager(page: usize, pages: usize, total: usize) -> impl IntoView {
    let prev = (page > 1).then(|| with_params(&[("page", (page - 1).to_string())]));
    let next = (page < pages).then(|| with_params(&[("page", (page + 1).to_string())]));
    view! {
        <nav class="pager" aria-label="Pages">
            {prev.map(|href| view! { <a href=href rel="prev">"← Previous"</a> })}
            <span>{format!("Page {page} of {pages} · {total} in all")}</span>
            {next.map(|href| view! { <a href=href rel="next">"Next →"</a> })}
        </nav>
    }
}

/// The filter bar of a table: a search box plus the page's own filters, submitted as a
/// GET form so the filter lands in the URL.
#[component]
pub fn FilterBar(query: ListQuery, #[prop(optional)] children: Option<Children>) -> impl IntoView {
    view! {
        <form method="get" class="filters" role="search">
            <label>
                "Search"
                <input type="search" name="q" value=query.q.clone()/>
            </label>
            {children.map(|c| c())}
            {(!query.sort.is_empty()).then(|| view! {
                <input type="hidden" name="sort" value=query.sort.clone()/>
                <input type="hidden" name="dir" value=if query.desc { "desc" } else { "" }/>
            })}
            <button type="submit">"Filter"</button>
        </form>
    }
}

/// A select filter of the filter bar.
#[component]
pub fn FilterSelect(
    name: &'static str,
    label: &'static str,
    options: Vec<(String, String)>,
    query: ListQuery,
) -> impl IntoView {
    let current = query.filters.get(name).cloned().unwrap_or_default();
    view! {
        <label>
            {label}
            <select name=name>
                <option value="">"Any"</option>
                {options
                    .into_iter()
                    .map(|(value, text)| {
                        let selected = value == current;
                        view! { <option value=value selected=selected>{text}</option> }
                    })
                    .collect_view()}
            </select>
        </label>
    }
}

/// Shown when a table has no rows.
#[component]
pub fn Empty(#[prop(into)] message: String) -> impl IntoView {
    view! { <p class="empty">{message}</p> }
}

/// A table of a page of rows, with its pager, or the empty state.
#[component]
pub fn Table<T: Clone + Send + Sync + 'static>(
    page: Page<T>,
    head: AnyView,
    row: fn(T) -> AnyView,
    #[prop(into)] empty: String,
) -> impl IntoView {
    if page.rows.is_empty() {
        return view! { <Empty message=empty/> }.into_any();
    }
    let pages = page.pages();
    view! {
        <div class="table-wrap">
            <table>
                <thead><tr>{head}</tr></thead>
                <tbody>{page.rows.into_iter().map(row).collect_view()}</tbody>
            </table>
        </div>
        <Pager page=page.page pages total=page.total/>
    }
    .into_any()
}

/// A page's loaded data: "Loading…" until it arrives, then `view` of it, or the error.
#[component]
pub fn Loaded<T, F>(data: Resource<Result<T, AppError>>, view: F) -> impl IntoView
where
    T: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static,
    F: Fn(T) -> AnyView + Clone + Send + Sync + 'static,
{
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || {
                let view = view.clone();
                Suspend::new(async move {
                    match data.await {
                        Ok(value) => view(value),
                        Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                    }
                })
            }}
        </Suspense>
    }
}

/// The error of a failed action or load, announced to screen readers.
#[component]
pub fn ErrorBox(error: AppError) -> impl IntoView {
    let sign_in = matches!(error, AppError::SignInRequired);
    view! {
        <div class="error-box" role="alert">
            <p>{error.to_string()}</p>
            {sign_in.then(|| view! { <p><a href="/sign-in">"Sign in"</a></p> })}
        </div>
    }
}

/// A success notice.
#[component]
pub fn Notice(#[prop(into)] message: String) -> impl IntoView {
    view! { <div class="notice" role="status">{message}</div> }
}

/// 404 page.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(r) = use_context::<leptos_axum::ResponseOptions>() {
        r.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <h1>"Page not found"</h1>
        <p><a href="/">"Go to the home page"</a></p>
    }
}

/// A text input with its label, hint and inline error; `value` is what to show (the
/// value sent back with an error, or the stored one).
#[component]
pub fn Field(
    name: &'static str,
    label: &'static str,
    #[prop(into)] value: Signal<String>,
    #[prop(into)] error: Signal<Option<String>>,
    #[prop(default = "text")] kind: &'static str,
    #[prop(optional)] required: bool,
    #[prop(optional)] hint: Option<&'static str>,
    #[prop(optional)] autocomplete: Option<&'static str>,
) -> impl IntoView {
    let id = format!("f-{name}");
    let err_id = format!("{id}-error");
    let hint_id = format!("{id}-hint");
    let described = move || {
        let mut ids = Vec::new();
        if hint.is_some() {
            ids.push(hint_id.clone());
        }
        if error.get().is_some() {
            ids.push(err_id.clone());
        }
        ids.join(" ")
    };
    view! {
        <div class="field" class:invalid=move || error.get().is_some()>
            <label for=id.clone()>{label}{required.then_some(" *")}</label>
            {hint.map(|h| view! { <p class="hint" id=format!("f-{name}-hint")>{h}</p> })}
            <input
                id=id.clone()
                name=name
                type=kind
                prop:value=move || value.get()
                value=move || value.get()
                required=required
                autocomplete=autocomplete
                aria-invalid=move || error.get().is_some().to_string()
                aria-describedby=described
            />
            {move || error.get().map(|e| view! { <p class="field-error" id=format!("f-{name}-error")>{e}</p> })}
        </div>
    }
}

/// A group of checkboxes posting `name[code]=code` for each checked option.
#[component]
pub fn Checks(
    name: &'static str,
    legend: &'static str,
    options: Vec<(String, String)>,
    #[prop(into)] checked: Signal<Vec<String>>,
    #[prop(into)] error: Signal<Option<String>>,
) -> impl IntoView {
    view! {
        <fieldset class="field checks" class:invalid=move || error.get().is_some()>
            <legend>{legend}</legend>
            {options
                .into_iter()
                .map(|(code, text)| {
                    let input_name = format!("{name}[{code}]");
                    let c = code.clone();
                    view! {
                        <label class="check">
                            <input type="checkbox" name=input_name value=code.clone()
                                checked=move || checked.get().contains(&c)/>
                            {text}
                        </label>
                    }
                })
                .collect_view()}
            {move || error.get().map(|e| view! { <p class="field-error">{e}</p> })}
        </fieldset>
    }
}

/// The required "I am sure" box of a destructive action: the browser will not submit
/// without it (no script needed) and the server checks it too.
#[component]
pub fn Confirm(#[prop(into)] label: String) -> impl IntoView {
    view! {
        <label class="confirm">
            <input type="checkbox" name="confirm" value="yes" required=true/>
            {label}
        </label>
    }
}

/// The codes of a checkbox group's map (see [`Checks`]).
pub fn checked(map: Option<BTreeMap<String, String>>) -> Vec<String> {
    map.map(|m| m.into_keys().collect()).unwrap_or_default()
}

/// No error (for fields that are not validated one by one).
pub fn no_error() -> Signal<Option<String>> {
    Signal::derive(|| None)
}
