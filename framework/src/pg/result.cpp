#include <coronet/pg/result.hpp>

#include <fmt/format.h>
#include <libpq-fe.h>

#include <cstdlib>

namespace coronet::pg {

result::result(pg_result* r) noexcept : res_(r) {}

void result::clear::operator()(pg_result* r) const noexcept
{
  PQclear(r);
}

std::size_t result::size() const noexcept
{
  return res_ ? static_cast<std::size_t>(PQntuples(res_.get())) : 0;
}

int result::columns() const noexcept
{
  return res_ ? PQnfields(res_.get()) : 0;
}

std::string_view result::column_name(int column) const noexcept
{
  const char* name = res_ ? PQfname(res_.get(), column) : nullptr;
  return name ? name : "";
}

int result::column_index(std::string_view name) const noexcept
{
  for (int i = 0; i < columns(); ++i)
    if (column_name(i) == name)
      return i;
  return -1;
}

std::uint64_t result::affected() const noexcept
{
  const char* n = res_ ? PQcmdTuples(res_.get()) : "";
  return *n ? std::strtoull(n, nullptr, 10) : 0;
}

row result::operator[](std::size_t index) const noexcept
{
  return row(*this, index);
}

result::iterator result::begin() const noexcept
{
  return iterator(this, 0);
}

result::iterator result::end() const noexcept
{
  return iterator(this, size());
}

bool row::is_null(int column) const
{
  return !text(column);
}

std::optional<std::string_view> row::text(int column) const
{
  if (column < 0 || column >= size())
    throw error(errc::bad_query, fmt::format("column {} asked of a row of {}", column, size()));
  auto* r = result_->native();
  if (PQgetisnull(r, index_, column))
    return std::nullopt;
  return std::string_view(PQgetvalue(r, index_, column), static_cast<std::size_t>(PQgetlength(r, index_, column)));
}

std::string row::describe(int column) const
{
  return fmt::format("column {} (\"{}\")", column, result_->column_name(column));
}

int row::named(std::string_view column_name) const
{
  int i = result_->column_index(column_name);
  if (i < 0)
    throw error(errc::bad_query, fmt::format("no column \"{}\" in the result", column_name));
  return i;
}

void row::null_into_non_optional(int column) const
{
  throw error(errc::bad_query, fmt::format("{} is NULL: read it as std::optional", describe(column)));
}

void row::expect_columns(int n, std::string_view type) const
{
  if (size() != n)
    throw error(errc::bad_query, fmt::format("the row has {} columns, {} takes {}", size(), type, n));
}

} // namespace coronet::pg
